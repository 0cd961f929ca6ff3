from __future__ import annotations

import pytest

from reelgate.core.errors import IllegalTransition
from reelgate.core.lifecycle import (
    Observation,
    Status,
    Task,
    UpstreamState,
    apply,
    fail,
    progress_of,
)


def make_task(status: Status = Status.QUEUED, **kw: object) -> Task:
    return Task(
        id="task_x",
        owner_id="tok_a",
        provider="sandbox",
        model="sandbox-t2v",
        request={},
        status=status,
        submit_time=1000,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "progress"),
    [
        (Status.QUEUED, "10%"),
        (Status.IN_PROGRESS, "50%"),
        (Status.SUCCESS, "100%"),
        (Status.FAILURE, "100%"),
    ],
)
def test_progress_strings_follow_the_seed(status: Status, progress: str) -> None:
    assert progress_of(status) == progress


def test_start_sets_start_time_only() -> None:
    task = apply(make_task(), Observation(UpstreamState.RUNNING), now=1010.7)
    assert task is not None
    assert (task.status, task.start_time, task.finish_time) == (Status.IN_PROGRESS, 1010, 0)
    assert task.fail_reason == ""


def test_success_keeps_start_and_sets_finish_and_url() -> None:
    running = make_task(Status.IN_PROGRESS, start_time=1010)
    done = apply(running, Observation(UpstreamState.SUCCEEDED, video_url="https://v/x.mp4"), 1120)
    assert done is not None
    assert (done.status, done.start_time, done.finish_time) == (Status.SUCCESS, 1010, 1120)
    assert done.fail_reason == "https://v/x.mp4"
    assert done.progress == "100%"


def test_queued_straight_to_success_gets_a_start_time() -> None:
    done = apply(make_task(), Observation(UpstreamState.SUCCEEDED, video_url="u"), 1050)
    assert done is not None
    assert done.start_time == 1050
    assert done.finish_time == 1050


def test_success_without_url_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        apply(make_task(Status.IN_PROGRESS), Observation(UpstreamState.SUCCEEDED), 1100)


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (UpstreamState.FAILED, "upstream_failed"),
        (UpstreamState.CANCELLED, "cancelled"),
        (UpstreamState.EXPIRED, "expired"),
    ],
)
def test_every_ending_upstream_state_ends_the_task(state: UpstreamState, code: str) -> None:
    ended = apply(make_task(Status.IN_PROGRESS, start_time=1010), Observation(state), 1100)
    assert ended is not None
    assert ended.status is Status.FAILURE
    assert ended.error_code == code
    assert ended.fail_reason  # never blank: clients print it
    assert ended.finish_time == 1100


def test_upstream_error_text_is_kept() -> None:
    seen = Observation(UpstreamState.FAILED, error_code="Moderation", error_message="blocked")
    ended = apply(make_task(Status.IN_PROGRESS), seen, 1100)
    assert ended is not None
    assert (ended.error_code, ended.fail_reason) == ("Moderation", "blocked")


def test_same_status_is_no_change() -> None:
    assert apply(make_task(), Observation(UpstreamState.QUEUED), 1005) is None
    done = make_task(Status.SUCCESS, result_url="u", finish_time=1100)
    assert apply(done, Observation(UpstreamState.SUCCEEDED, video_url="u"), 1200) is None


@pytest.mark.parametrize("terminal", [Status.SUCCESS, Status.FAILURE])
@pytest.mark.parametrize("state", [UpstreamState.QUEUED, UpstreamState.RUNNING])
def test_nothing_leaves_a_terminal_status(terminal: Status, state: UpstreamState) -> None:
    with pytest.raises(IllegalTransition):
        apply(make_task(terminal), Observation(state), 1100)
    with pytest.raises(IllegalTransition):
        fail(make_task(terminal), code="timeout", message="late", now=1100)


def test_success_cannot_turn_into_failure() -> None:
    done = make_task(Status.SUCCESS, result_url="u")
    with pytest.raises(IllegalTransition):
        apply(done, Observation(UpstreamState.FAILED), 1100)


def test_running_cannot_go_back_to_queued() -> None:
    with pytest.raises(IllegalTransition):
        apply(make_task(Status.IN_PROGRESS), Observation(UpstreamState.QUEUED), 1100)


def test_fail_by_reelgate() -> None:
    ended = fail(make_task(), code="timeout", message="took too long", now=2000)
    assert (ended.status, ended.error_code, ended.fail_reason) == (
        Status.FAILURE,
        "timeout",
        "took too long",
    )
    assert ended.start_time == 0  # it never started
    assert ended.finish_time == 2000

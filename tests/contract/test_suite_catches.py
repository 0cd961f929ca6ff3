"""The contract suite can fail: each check, run against an in-memory provider broken in the one
way it guards against, reports it; and a target's declarations (not applicable, known failures)
are honoured and cannot go stale."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

import pytest

from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.errors import InvalidRequest, UpstreamUnavailable
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.testing import InMemoryProvider
from reelgate.testing import contract_checks as checks
from reelgate.testing.contract_support import Scenario, run_check
from reelgate.testing.simulator.kinds import FaultKind
from reelgate.testing.targets import MEMORY, memory_target


class ShowsUnknownStatus(InMemoryProvider):
    """Maps a status it does not know to "running" instead of None."""

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        answer = await super().look_up(upstream_ids)
        return {u: o or Observation(UpstreamState.RUNNING) for u, o in answer.items()}


class AnswersUnknownIds(InMemoryProvider):
    """Maps an id unknown upstream to None (look again) instead of leaving it out."""

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        answer = dict(await super().look_up(upstream_ids))
        return {u: answer.get(u) for u in upstream_ids}


class NeverReconciles(InMemoryProvider):
    async def reconcile(self, task_id: str, request: NormalizedRequest, since: float) -> str | None:
        return None


class LosesTasksOnBadAnswers(InMemoryProvider):
    """Reads a look-up whose answer was lost as "no task" (the engine would count it lost)."""

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        try:
            return await super().look_up(upstream_ids)
        except UpstreamUnavailable:
            return {}


class IgnoresRetryAfter(InMemoryProvider):
    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        try:
            return await super().submit(task_id, request, callback_url=callback_url)
        except UpstreamUnavailable as exc:
            exc.retry_after = None
            raise


class BlamesTheRequest(InMemoryProvider):
    """Turns an upstream 500 into a client error (the task would fail for nothing)."""

    async def submit(
        self, task_id: str, request: NormalizedRequest, *, callback_url: str | None = None
    ) -> str:
        try:
            return await super().submit(task_id, request, callback_url=callback_url)
        except UpstreamUnavailable as exc:
            raise InvalidRequest(exc.message) from None


class CancelsAnything(InMemoryProvider):
    """Claims to cancel a running task (its target declares cancel while queued only)."""

    async def cancel(self, upstream_id: str) -> None:
        self.jobs[upstream_id].cancelled = True


class ParsesNaively(InMemoryProvider):
    def parse_callback(self, callback: Callback) -> CallbackHint | None:
        payload = json.loads(callback.body)
        return CallbackHint(payload["id"], payload["status"] != "running")


class HidesModeration(InMemoryProvider):
    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        answer = await super().look_up(upstream_ids)
        return {
            u: dataclasses.replace(o, error_code="upstream_failed") if o and o.error_code else o
            for u, o in answer.items()
        }


class LooksUpOneByOne(InMemoryProvider):
    """Declares batches of 1000 but costs one upstream request per id."""

    async def look_up(self, upstream_ids: Sequence[str]) -> Mapping[str, Observation | None]:
        answer = await super().look_up(upstream_ids)
        self.lookups += len(upstream_ids) - 1
        return answer


@pytest.mark.parametrize(
    ("broken", "check", "scenario"),
    [
        (ShowsUnknownStatus, "unknown_status", checks.unknown_status),
        (AnswersUnknownIds, "batch", checks.batch),
        (
            NeverReconciles,
            "fault_at_create:timeout",
            lambda r: checks.fault_at_create(r, FaultKind.TIMEOUT),
        ),
        (
            LosesTasksOnBadAnswers,
            "fault_at_lookup:malformed",
            lambda r: checks.fault_at_lookup(r, FaultKind.MALFORMED),
        ),
        (
            IgnoresRetryAfter,
            "fault_at_create:429",
            lambda r: checks.fault_at_create(r, FaultKind.RATE_LIMITED),
        ),
        (
            BlamesTheRequest,
            "fault_at_create:500",
            lambda r: checks.fault_at_create(r, FaultKind.SERVER_ERROR),
        ),
        (CancelsAnything, "cancel_running", checks.cancel_running),
        (ParsesNaively, "garbage_callbacks", checks.garbage_callbacks),
        (HidesModeration, "moderation", checks.moderation),
        (LooksUpOneByOne, "batch_size", checks.batch_size),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_broken_provider_fails_its_check(
    broken: type[InMemoryProvider], check: str, scenario: Scenario
) -> None:
    run_check(MEMORY, check, scenario)  # the provider as shipped passes it
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        run_check(memory_target(broken, name=broken.__name__), check, scenario)


def test_a_check_declared_not_applicable_is_skipped_with_its_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="no wire to answer slowly on"):
        run_check(MEMORY, "fault_at_create:slow", checks.success)


def test_a_known_failure_is_an_expected_failure_until_it_passes() -> None:
    failing = dataclasses.replace(
        memory_target(ShowsUnknownStatus), known_failures={"unknown_status": "bug 1"}
    )
    with pytest.raises(pytest.xfail.Exception, match="bug 1"):
        run_check(failing, "unknown_status", checks.unknown_status)
    fixed = dataclasses.replace(MEMORY, known_failures={"unknown_status": "bug 1"})
    with pytest.raises(pytest.fail.Exception, match="remove it from the target's known_failures"):
        run_check(fixed, "unknown_status", checks.unknown_status)

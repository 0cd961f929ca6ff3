"""The checks of the provider contract suite, one coroutine each, driving a ``Rig``.

``reelgate.testing.contract`` turns each into a pytest test; the names there say which check
is which (and are what a target's ``not_applicable`` and ``known_failures`` refer to).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time

import pytest

from reelgate.core.channels import Verdict, verdict
from reelgate.core.errors import (
    ClientError,
    Conflict,
    InvalidRequest,
    UpstreamError,
    UpstreamUnavailable,
)
from reelgate.core.ids import new_task_id
from reelgate.core.lifecycle import Callback, CallbackHint, Observation, UpstreamState
from reelgate.testing.contract_support import CallbackReceiver, Rig, assert_mp4, other_id
from reelgate.testing.simulator.kinds import Fault, FaultKind, Outcome

# The Retry-After the suite's 429s carry: distinctive, so a provider that ignores it shows.
RETRY_AFTER_S = 7.0
MODERATION_CODE = "content_moderation"
AUTH_FAILED = "upstream_auth_failed"


# -- lifecycle ----------------------------------------------------------------------------------
async def _run_through(rig: Rig, outcome: Outcome) -> tuple[str, list[Observation]]:
    """Create a task, look at it queued, after its queue and after its run; the looks."""
    _, upstream_id = await rig.create(outcome)
    looks = [await rig.state_of(upstream_id)]
    assert looks[0].state is UpstreamState.QUEUED, looks[0]
    rig.advance_past_queue()
    looks.append(await rig.state_of(upstream_id))
    rig.advance_past_run()
    looks.append(await rig.settle(upstream_id))
    assert rig.creates() == 1
    return upstream_id, looks


async def success(rig: Rig) -> None:
    _, (_, running, end) = await _run_through(rig, Outcome.SUCCESS)
    assert running.state is UpstreamState.RUNNING, running
    assert end.state is UpstreamState.SUCCEEDED, end
    assert end.video_url, "a success carries its video"
    assert not end.error_code


async def failure(rig: Rig) -> None:
    _, (_, _, end) = await _run_through(rig, Outcome.FAILURE)
    assert end.state is UpstreamState.FAILED, end
    assert end.error_code, "a failure has a code"
    assert end.error_code != MODERATION_CODE, end
    assert end.error_message, "a failure says why"
    assert not end.video_url


async def moderation(rig: Rig) -> None:
    """Refused at create (a client error, nothing created) or failed later, either way with
    the one moderation code."""
    refused: ClientError | None = None
    try:
        _, upstream_id = await rig.create(Outcome.MODERATION)
    except ClientError as exc:
        refused = exc
    if refused is not None:
        assert isinstance(refused, InvalidRequest), refused
        assert refused.code == MODERATION_CODE, refused
        assert rig.creates() == 0
        return
    rig.advance_past_queue()
    rig.advance_past_run()
    end = await rig.settle(upstream_id)
    assert (end.state, end.error_code) == (UpstreamState.FAILED, MODERATION_CODE), end


async def expiry(rig: Rig) -> None:
    _, (_, _, end) = await _run_through(rig, Outcome.EXPIRY)
    assert end.state is UpstreamState.EXPIRED, end
    assert not end.video_url


async def unknown_status(rig: Rig) -> None:
    """An unknown upstream status maps to None (look again), never to a state; then the task
    goes on to its real end."""
    _, upstream_id = await rig.create(Outcome.UNKNOWN_STATUS)
    rig.advance_past_queue()
    answer = await rig.look(upstream_id)
    assert upstream_id in answer, "a task in an unknown status is still a known task"
    assert answer[upstream_id] is None, f"an unknown status was mapped: {answer[upstream_id]}"
    rig.advance_past_run()
    assert (await rig.settle(upstream_id)).state is UpstreamState.SUCCEEDED


# -- cancel -------------------------------------------------------------------------------------
async def cancel_queued(rig: Rig) -> None:
    _, upstream_id = await rig.create()
    if rig.target.features.cancel == "none":
        with pytest.raises(Conflict):
            await rig.provider.cancel(upstream_id)
        return
    await rig.provider.cancel(upstream_id)
    assert (await rig.settle(upstream_id)).state is UpstreamState.CANCELLED


async def cancel_running(rig: Rig) -> None:
    _, upstream_id = await rig.create()
    rig.advance_past_queue()
    assert (await rig.state_of(upstream_id)).state is UpstreamState.RUNNING
    if rig.target.features.cancel == "any":
        await rig.provider.cancel(upstream_id)
        assert (await rig.settle(upstream_id)).state is UpstreamState.CANCELLED
        return
    with pytest.raises(Conflict):
        await rig.provider.cancel(upstream_id)
    assert (await rig.state_of(upstream_id)).state is UpstreamState.RUNNING  # untouched


async def cancel_unknown(rig: Rig) -> None:
    _, upstream_id = await rig.create()
    with pytest.raises(Conflict):
        await rig.provider.cancel(other_id(upstream_id, {upstream_id}))


# -- look-ups -----------------------------------------------------------------------------------
async def batch(rig: Rig) -> None:
    """Every known id is answered; an id unknown upstream is missing (not None, not an error);
    a repeated id is answered once."""
    ids = [(await rig.create())[1] for _ in range(3)]
    stranger = other_id(ids[0], set(ids))
    answer = await rig.look(*ids, stranger, ids[0])
    assert set(answer) == set(ids), answer
    assert all(o is not None and o.state is UpstreamState.QUEUED for o in answer.values())


async def batch_size(rig: Rig) -> None:
    """A look-up of n ids costs ceil(n / batch size) upstream requests."""
    ids = [(await rig.create())[1] for _ in range(5)]
    before = rig.upstream.control.counts().lookups
    if before is None:
        pytest.skip(f"{rig.target.name}: the upstream cannot count its look-ups")
    assert set(await rig.look(*ids)) == set(ids)
    after = rig.upstream.control.counts().lookups
    assert after is not None
    assert after - before == math.ceil(len(ids) / rig.target.features.batch_size)


# -- faults -------------------------------------------------------------------------------------
def _transient(exc: UpstreamError, kind: FaultKind) -> None:
    """A fault is the upstream's passing trouble: try later or elsewhere, never fail the task
    or disable the channel."""
    assert isinstance(exc, UpstreamUnavailable), f"{kind}: not transient: {exc!r}"
    assert verdict(exc.code, client_error=False, transient=True) not in (
        Verdict.FAIL,
        Verdict.DISABLE,
    ), exc
    if kind is FaultKind.RATE_LIMITED:
        assert exc.retry_after == RETRY_AFTER_S, f"Retry-After not honoured: {exc!r}"
    if kind is FaultKind.RATE_LIMITED_BARE:
        assert exc.retry_after is None, f"a Retry-After that was never sent: {exc!r}"


async def fault_at_create(rig: Rig, kind: FaultKind) -> None:
    """Submit through the fault as the engine does (look for a lost create before sending
    again): exactly one task upstream, and it is the one found."""
    if (kind.loses_answer or kind is FaultKind.SLOW) and not rig.target.features.reconcile:
        pytest.skip(f"{rig.target.name} declares no reconcile: a lost create may be sent twice")
    rig.upstream.control.inject(Fault("create", kind, 1, RETRY_AFTER_S))
    task_id, request = new_task_id(), rig.request()
    since = time.time()
    try:
        upstream_id = await rig.provider.submit(task_id, request)
    except ClientError as exc:
        raise AssertionError(f"{kind}: an upstream fault blamed on the request: {exc!r}") from exc
    except UpstreamError as exc:
        _transient(exc, kind)
        if kind.error_status is not None:
            assert rig.creates() == 0, "an error answer, yet a task was created"
        found = await rig.provider.reconcile(task_id, request, since)
        if kind.error_status is not None:
            assert found is None, f"reconcile found {found} where nothing was created"
        upstream_id = found or await rig.provider.submit(task_id, request)
    else:
        assert kind.error_status is None, f"{kind}: an error answer was taken as a create"
    assert rig.creates() == 1
    assert (await rig.state_of(upstream_id)).state is UpstreamState.QUEUED


async def fault_at_lookup(rig: Rig, kind: FaultKind) -> None:
    """A faulted look-up raises a transient error or answers the truth, never a wrong answer
    (a task missing or mapped wrongly); the next look-up is right."""
    ids = [(await rig.create())[1] for _ in range(2)]
    rig.upstream.control.inject(Fault("lookup", kind, 1, RETRY_AFTER_S))
    try:
        answer = await rig.look(*ids)
    except ClientError as exc:
        raise AssertionError(f"{kind}: an upstream fault blamed on the request: {exc!r}") from exc
    except UpstreamError as exc:
        _transient(exc, kind)
    else:
        assert set(answer) == set(ids), f"{kind}: tasks went missing: {answer}"
        assert all(o is not None and o.state is UpstreamState.QUEUED for o in answer.values())
    answer = await rig.look(*ids)
    assert set(answer) == set(ids), answer
    assert rig.creates() == 2


async def reconcile(rig: Rig) -> None:
    """Nothing is found for a task never sent; the task a submit created is found."""
    if not rig.target.features.reconcile:
        pytest.skip(f"{rig.target.name} declares no reconcile")
    since = time.time()
    task_id, request = new_task_id(), rig.request()
    assert await rig.provider.reconcile(task_id, request, since) is None
    upstream_id = await rig.provider.submit(task_id, request)
    assert await rig.provider.reconcile(task_id, request, since) == upstream_id
    assert rig.creates() == 1


# -- callbacks ----------------------------------------------------------------------------------
def _hints(rig: Rig, received: list[Callback]) -> list[CallbackHint | None]:
    return [rig.provider.parse_callback(c) for c in received]


async def _final_callback(rig: Rig, receiver: CallbackReceiver, url: str) -> tuple[str, Callback]:
    """Create a task that calls ``url`` back, run it to its end; its id and final callback."""
    _, upstream_id = await rig.create(callback_url=url)
    rig.advance_past_queue()
    rig.advance_past_run()

    def ended(received: list[Callback]) -> bool:
        return any(h is not None and h.final for h in _hints(rig, received))

    received = await receiver.wait_for(ended)
    hints = _hints(rig, received)
    return upstream_id, next(c for c, h in zip(received, hints, strict=True) if h and h.final)


async def callbacks(rig: Rig) -> None:
    """Every callback names its task; the final one is confirmed by a look-up."""
    if rig.target.features.callbacks == "none":
        pytest.skip(f"{rig.target.name} declares no callbacks")
    receiver = CallbackReceiver()
    with receiver.serving() as url:
        upstream_id, _ = await _final_callback(rig, receiver, url)
    hints = _hints(rig, receiver.received)
    assert all(h is not None and h.upstream_id == upstream_id for h in hints), hints
    assert (await rig.state_of(upstream_id)).state is UpstreamState.SUCCEEDED


async def forged_callbacks(rig: Rig) -> None:
    """A callback copied onto another task, or onto an id never handed out, is at most a hint
    naming it (a signed one is no hint at all): the look-up it leads to tells the truth."""
    if rig.target.features.callbacks == "none":
        pytest.skip(f"{rig.target.name} declares no callbacks")
    receiver = CallbackReceiver()
    with receiver.serving() as url:
        finished, real = await _final_callback(rig, receiver, url)
    _, queued = await rig.create()
    body = real.body
    named = rig.target.callback_id
    assert named(finished).encode() in body, "a callback that does not name its task"

    def forged(upstream_id: str) -> Callback:
        swapped = body.replace(named(finished).encode(), named(upstream_id).encode())
        return dataclasses.replace(real, body=swapped)

    hint = rig.provider.parse_callback(forged(queued))
    assert hint is None or hint.upstream_id == queued, hint
    assert (await rig.state_of(queued)).state is UpstreamState.QUEUED
    stranger = other_id(finished, {finished, queued})
    hint = rig.provider.parse_callback(forged(stranger))
    assert hint is None or hint.upstream_id == stranger, hint
    assert stranger not in await rig.look(stranger)


_FLAT_GARBAGE = [
    b"",
    b" ",
    b"null",
    b"{",
    b"[]",
    b"{}",
    b'"text"',
    b"0",
    b"1e999",
    b"NaN",
    b'{"id": 5}',
    b'{"id": null, "status": "succeeded"}',
    b'{"id": ["x"], "status": {}}',
    b'{"status": "succeeded"}',
    b'{"id": "x", "status": {"nested": [1, 2]}}',
    b"\xff\xfe\x00",
    b"\x00" * 100,
    "é".encode("utf-16"),
    b"x" * 300_000,
    json.dumps({"id": "\ud800", "status": "succeeded"}).encode(),
    bytes(random.Random(17).randrange(256) for _ in range(4096)),  # noqa: S311 - test data
]
_DEEP_GARBAGE = [b"[" * 5000, b'{"id":' * 5000]


def _never_raises(rig: Rig, bodies: list[bytes]) -> None:
    for body in bodies:
        try:
            hint = rig.provider.parse_callback(Callback(body, {}, "http://127.0.0.1/cb"))
        except Exception as exc:
            raise AssertionError(f"parse_callback({body[:40]!r}…) raised {exc!r}") from exc
        assert hint is None or isinstance(hint, CallbackHint), hint


async def garbage_callbacks(rig: Rig) -> None:
    _never_raises(rig, _FLAT_GARBAGE)


async def deep_garbage_callbacks(rig: Rig) -> None:
    _never_raises(rig, _DEEP_GARBAGE)


# -- credentials --------------------------------------------------------------------------------
async def probe(rig: Rig) -> None:
    await rig.provider.probe()


async def bad_credentials(rig: Rig) -> None:
    """A wrong credential: probe and submit raise the error that disables the channel."""
    if not rig.target.credentials:
        pytest.skip(f"{rig.target.name} declares no credentials")
    wrong = rig.with_secret(f"not-{rig.upstream.key}")
    for attempt in (wrong.probe(), wrong.submit(new_task_id(), rig.request())):
        with pytest.raises(UpstreamError) as caught:
            await attempt
        exc = caught.value
        assert exc.code == AUTH_FAILED, exc
        assert verdict(exc.code, client_error=False, transient=False) is Verdict.DISABLE
    assert rig.creates() == 0


# -- results ------------------------------------------------------------------------------------
async def result_is_mp4(rig: Rig) -> None:
    """The result can be fetched (for reelgate's durable copy) and is a real video."""
    _, (_, _, end) = await _run_through(rig, Outcome.SUCCESS)
    assert end.state is UpstreamState.SUCCEEDED, end
    assert_mp4(await rig.open_result(end.video_url))
    if end.last_frame_url:
        frame = await rig.open_result(end.last_frame_url)
        assert frame[:8] == b"\x89PNG\r\n\x1a\n" or frame[:3] == b"\xff\xd8\xff", frame[:8]

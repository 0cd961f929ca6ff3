"""How an injected fault reaches the wire: which request a fault hits, a lost answer (hung,
reset or truncated) and a correct answer trickled out slowly."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reelgate.testing.simulator.kinds import Fault, FaultKind

__all__ = ["SlowResponse", "lose_answer", "take_fault"]

TRICKLE_BYTES = 64
TRICKLE_PAUSE_S = 0.02


def take_fault(
    faults: list[Fault], endpoint: str, groups: Mapping[str, frozenset[str]]
) -> Fault | None:
    """The first fault with requests left that applies to ``endpoint`` (by its name, a group
    it belongs to, or "any"), with one request used up."""
    for fault in faults:
        if fault.count > 0 and (
            fault.endpoint in (endpoint, "any") or endpoint in groups.get(fault.endpoint, ())
        ):
            fault.count -= 1
            return fault
    return None


async def lose_answer(kind: FaultKind, send: Send, hang_s: float) -> None:
    """Lose the answer: hang first (timeout), then a truncated body or a reset connection."""
    if kind is FaultKind.TIMEOUT:
        await asyncio.sleep(hang_s)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"id": "task-', "more_body": True})
    if kind is FaultKind.RESET:
        raise ConnectionResetError("injected connection reset")
    await send({"type": "http.response.body", "body": b" " * 51})  # malformed: truncated


class SlowResponse(Response):
    """``original``'s status, headers and body, the body sent a few bytes at a time."""

    def __init__(self, original: Response) -> None:
        super().__init__(bytes(original.body), status_code=original.status_code)
        self.raw_headers = [
            (k, v) for k, v in original.raw_headers if k.lower() != b"content-length"
        ] + [(b"content-length", str(len(self.body)).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        for i in range(0, max(len(body), 1), TRICKLE_BYTES):
            await asyncio.sleep(TRICKLE_PAUSE_S)
            await send(
                {
                    "type": "http.response.body",
                    "body": body[i : i + TRICKLE_BYTES],
                    "more_body": i + TRICKLE_BYTES < len(body),
                }
            )

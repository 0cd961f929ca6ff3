"""Fault injection for the Ark simulator: the scripted ways a request can go wrong.

A ``Fault`` (from ``POST /_sim/faults``) hits the next ``count`` requests to its endpoint with an
error status, a hang, a reset or truncated connection, or a correct answer trickled out slowly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reelgate.testing.ark_errors import ArkError

# What happens to the request: an error answer, the answer lost, or the answer sent slowly.
ERRORS = ("500", "429")
LOST = ("timeout", "malformed", "reset")
SLOW = "slow"


@dataclass
class Fault:
    endpoint: str  # create | get | list | delete | any_read | any
    kind: str  # one of ERRORS, LOST or SLOW
    count: int


def take_fault(faults: list[Fault], endpoint: str) -> Fault | None:
    """The first fault with requests left that applies to ``endpoint``, one request used up."""
    reads = ("get", "list")
    for fault in faults:
        if fault.count > 0 and (
            fault.endpoint in (endpoint, "any")
            or (fault.endpoint == "any_read" and endpoint in reads)
        ):
            fault.count -= 1
            return fault
    return None


def injected_error(kind: str) -> ArkError:
    status = int(kind)
    code = "InternalServiceError" if status == 500 else "RateLimitExceeded.EndpointRPMExceeded"
    return ArkError(status, code, "Injected fault.")


async def misbehave(kind: str, send: Send, hang_s: float) -> None:
    """Lose the answer: hang first (timeout), then a truncated body or a reset connection."""
    if kind == "timeout":
        await asyncio.sleep(hang_s)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"id": "cgt-', "more_body": True})
    if kind == "reset":
        raise ConnectionResetError("injected connection reset")
    await send({"type": "http.response.body", "body": b" " * 52})  # malformed: truncated


class SlowResponse(Response):
    """A correct body, sent a few bytes at a time."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        for i in range(0, len(body), 64):
            await asyncio.sleep(0.02)
            await send(
                {
                    "type": "http.response.body",
                    "body": body[i : i + 64],
                    "more_body": i + 64 < len(body),
                }
            )

"""Injected faults in Ark's dialect: the error body an injected 500 or 429 answers with (the
kinds and how they reach the wire are shared: ``reelgate.testing.simulator``)."""

from __future__ import annotations

from starlette.responses import Response

from reelgate.testing.ark_errors import ArkError
from reelgate.testing.ark_server import error_response
from reelgate.testing.simulator import Fault, FaultKind

__all__ = ["Fault", "FaultKind", "injected_error"]


def injected_error(status: int) -> Response:
    code = "InternalServiceError" if status == 500 else "RateLimitExceeded.EndpointRPMExceeded"
    return error_response(ArkError(status, code, "Injected fault."))

"""Vidu's wire format (no I/O): the create body of each endpoint, its task objects as
``Observation``s, and its error body ``{code, reason, message, metadata.trace_id}`` as
reelgate's errors (``shared/spec/providers/vidu.md`` §3, §5, §8)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reelgate.core.capabilities import NormalizedRequest
from reelgate.core.errors import InvalidRequest, ReelgateError, UpstreamError, UpstreamUnavailable
from reelgate.core.lifecycle import Observation, UpstreamState
from reelgate.providers.vidu import catalog
from reelgate.providers.vidu.models import mode_of

log = logging.getLogger("reelgate.providers.vidu")

STATES = {
    "created": UpstreamState.QUEUED,
    "queueing": UpstreamState.QUEUED,
    "processing": UpstreamState.RUNNING,
    "success": UpstreamState.SUCCEEDED,
    "failed": UpstreamState.FAILED,
}
UNFINISHED = ("created", "queueing", "processing")
CANCELLED = "UserCancelled"
# Codes of refused content: the prompt or an input (at create), or the output (at the end).
MODERATION = frozenset(
    {
        "TaskPromptPolicyViolation",
        "CreationPolicyViolation",
        "AuditSubmitIllegal",
        "AuditFailed",
        "PhotoAuditNotPass",
    }
)
# 400 reasons that say the request itself is wrong (another channel would refuse it too).
_INVALID = frozenset(
    {
        "BadRequest",
        "FieldLacking",
        "FieldUnwanted",
        "FieldItemCountOutOfRange",
        "FieldInvalid",
        "PageSizeOutOfRange",
        "ImageDownloadFailure",
        "ImageFormatInvalid",
        "ImageSizeInvalid",
        "ImageCheckBodyJointsFailed",
        "ImageCheckFaceFailed",
        "ImageObjectsUndetected",
        "MultiFaceDetected",
        "NoFaceDetected",
        "FaceDetectNotPass",
        "FaceDetectFailure",
    }
)


def marker(task_id: str) -> str:
    """The ``payload`` reelgate sets on a create, to find the task again (Vidu echoes it)."""
    return f"rg-{task_id}"


def endpoint(request: NormalizedRequest) -> str:
    return "/ent/v2/" + catalog.ENDPOINTS[mode_of(request)]


def build_body(
    request: NormalizedRequest, *, task_id: str, callback_url: str | None = None
) -> dict[str, Any]:
    """The create body of the endpoint the request's mode uses."""
    model = catalog.BY_NAME[request.model]
    mode = mode_of(request)
    rule = model.modes[mode]
    options = request.options
    body: dict[str, Any] = {
        "model": model.name,
        "prompt": request.prompt,
        "duration": request.duration,
        "resolution": options["resolution"],
        "payload": marker(task_id),
    }
    if request.images:
        body["images"] = list(request.images)
    if rule.ratios:
        body["aspect_ratio"] = options["ratio"]
    for name in ("seed", "watermark", "wm_position", "wm_url", *sorted(rule.options)):
        if name in options and name != "service_tier":
            body[catalog.WIRE_NAMES.get(name, name)] = options[name]
    if options.get("service_tier") == "flex":
        body["off_peak"] = True
    if callback_url:
        body["callback_url"] = callback_url
    return body


def observe(item: Mapping[str, Any]) -> Observation | None:
    """A Vidu task (``/tasks/{id}/creations``, a list item or a callback body) in reelgate's
    terms; ``None`` for a state this adapter does not know."""
    raw = item.get("state")
    state = STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        log.warning("Vidu reported unknown state %r for %s; will look again", raw, item.get("id"))
        return None
    creations = [c for c in item.get("creations") or [] if isinstance(c, dict)]
    first = creations[0] if creations else {}
    code = str(item.get("err_code") or "")
    error_code = message = ""
    if state is UpstreamState.FAILED:
        if code == CANCELLED:
            state = UpstreamState.CANCELLED
        error_code = "content_moderation" if code in MODERATION else "upstream_failed"
        if state is UpstreamState.CANCELLED:
            error_code = "cancelled"
        message = f"Vidu {code or 'failed'}: {_describe(code)}"
    video = first.get("video") if isinstance(first.get("video"), dict) else {}
    seconds = video.get("duration") if isinstance(video, dict) else None
    credits = item.get("credits")
    return Observation(
        state,
        video_url=str(first.get("url") or "") if state is UpstreamState.SUCCEEDED else "",
        error_code=error_code,
        error_message=message,
        usage_seconds=float(seconds)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0
        else None,
        extra={"credits": credits} if isinstance(credits, int) else {},
    )


def _describe(code: str) -> str:
    return {
        CANCELLED: "the task was cancelled",
        "CreationPolicyViolation": "the output was refused by moderation",
        "TaskPromptPolicyViolation": "the prompt was refused by moderation",
        "AuditSubmitIllegal": "the input failed the safety review",
        "CreditInsufficient": "the account has too few credits",
    }.get(code, "the task failed")


def error_of(status: int, payload: Any, retry_after: float | None = None) -> ReelgateError:
    """Vidu's error answer as reelgate's error (the channel verdicts follow from the codes)."""
    reason = str(payload.get("reason") or "") if isinstance(payload, dict) else ""
    text = str(payload.get("message") or "") if isinstance(payload, dict) else ""
    detail = f"Vidu {status} {reason or 'error'}: {text or 'no message'}"
    if reason in MODERATION:
        return InvalidRequest(detail, code="content_moderation")
    if status == 401:
        return UpstreamError(detail, code="upstream_auth_failed")
    if status == 403 or reason == "CreditInsufficient":
        return UpstreamError(detail, code="upstream_account_error")
    if reason == "ModelUnavailable":
        return UpstreamError(detail, code="upstream_model_unavailable")
    if status == 429:
        # QuotaExceeded is the concurrency cap: wait (cool down), never fail the task.
        code = "upstream_quota_exceeded" if reason == "QuotaExceeded" else "upstream_rate_limited"
        return UpstreamUnavailable(detail, code=code, retry_after=retry_after)
    if status >= 500 or status == 499 or reason == "OperationInProcess":
        return UpstreamUnavailable(detail, code="upstream_unavailable", retry_after=retry_after)
    if status == 400 and (reason in _INVALID or not reason):
        return InvalidRequest(detail, code="invalid_parameter")
    return UpstreamError(detail, code="upstream_error")

"""The admin API: tokens and their limits, and usage across every token.

Enabled by ``REELGATE_ADMIN_TOKEN``; its bearer secret is compared in constant time. Without it
every admin route answers 404, as if it did not exist. The same operations exist on the host as
``reelgate token …``.

    GET    /v1/admin/tokens                 list (never the secrets)
    POST   /v1/admin/tokens                 {"name","models","rpm","max_concurrent","webhook_url"}
    PATCH  /v1/admin/tokens/{ref}           change limits (null clears one)
    POST   /v1/admin/tokens/{ref}/revoke
    POST   /v1/admin/tokens/{ref}/rotate    a new secret, shown once
    POST   /v1/admin/tokens/{ref}/quota     {"grant"|"set": N, "limited", "note"}: the balance
    GET    /v1/admin/ledger                 ?token=&limit=&after=: ledger rows, newest first
    GET    /v1/admin/usage                  ?from=&to=&group_by=model|day|token, every token
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.billing import balance_view
from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.seed import bearer, list_limit, usage_response
from reelgate.core import canonical
from reelgate.core.canonical import INT32
from reelgate.core.errors import AuthenticationError, InvalidRequest, NotFound, ReelgateError
from reelgate.core.ids import ApiToken, new_token
from reelgate.core.request import MAX_MODEL_CHARS
from reelgate.service import VideoService

MAX_BODY = 16 * 1024
_LIMITS = ("models", "rpm", "max_concurrent")
MAX_NAME_CHARS = 200  # the api_tokens.name column
MAX_NOTE_CHARS = 500
# A quota change, in the billing currency's smallest unit: far beyond any real grant, and far
# enough inside a BIGINT that no sum of a ledger's entries can overflow it.
MAX_AMOUNT = 10**15


def token_view(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
        "active": t.active,
        "models": list(t.models),
        "rpm": t.rpm,
        "max_concurrent": t.max_concurrent,
        "quota_limited": t.quota_limited,
    }


def _webhook_url(fields: dict[str, Any]) -> tuple[str | None] | None:
    """``webhook_url`` taken out of a body: None when absent, (url,) or (None,) to clear it."""
    if "webhook_url" not in fields:
        return None
    url = fields.pop("webhook_url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise InvalidRequest(
            "webhook_url must be an http:// or https:// URL, or null",
            code="invalid_parameter",
            param="webhook_url",
        )
    return (None if url is None else canonical.url(url, "webhook_url"),)


def _limits(fields: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    # A token's name is set when it is made (a PATCH changes limits, not the name).
    unknown = sorted(set(fields) - {*_LIMITS, *(() if partial else ("name",))})
    if unknown:
        raise InvalidRequest(
            f"unknown parameter '{unknown[0]}'", code="unsupported_parameter", param=unknown[0]
        )
    out: dict[str, Any] = {}
    for key in _LIMITS:
        if key not in fields:
            if not partial:
                out[key] = () if key == "models" else None
            continue
        value = fields[key]
        if key == "models":
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(m, str) and m for m in value)
            ):
                raise InvalidRequest(
                    "models must be a list of model names", code="invalid_parameter", param=key
                )
            out[key] = tuple(
                canonical.text(m, f"models[{i}]", max_chars=MAX_MODEL_CHARS)
                for i, m in enumerate(value or ())
            )
        else:
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= INT32[1]
            ):
                raise InvalidRequest(
                    f"{key} must be a positive integer (at most {INT32[1]}) or null",
                    code="invalid_parameter",
                    param=key,
                )
            out[key] = value
    return out


def quota_changes(fields: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/admin/tokens/{ref}/quota`` as ``Store.change_quota`` arguments."""
    unknown = sorted(set(fields) - {"grant", "set", "limited", "note"})
    if unknown or not set(fields) & {"grant", "set", "limited"}:
        param = unknown[0] if unknown else "grant"
        raise InvalidRequest(
            "give grant, set and/or limited (and an optional note)",
            code="unsupported_parameter" if unknown else "missing_parameter",
            param=param,
        )
    out: dict[str, Any] = {}
    for key, arg in (("grant", "grant"), ("set", "set_to")):
        value = fields.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRequest(
                f"{key} must be an integer amount (no fractions)",
                code="invalid_parameter",
                param=key,
            )
        if not -MAX_AMOUNT <= value <= MAX_AMOUNT:
            raise InvalidRequest(
                f"{key} must be an amount from {-MAX_AMOUNT} to {MAX_AMOUNT}",
                code="invalid_parameter",
                param=key,
            )
        out[arg] = value
    if fields.get("limited") is not None:
        if not isinstance(fields["limited"], bool):
            raise InvalidRequest(
                "limited must be true or false", code="invalid_parameter", param="limited"
            )
        out["limited"] = fields["limited"]
    note = fields.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidRequest(
            f"note must be a string of at most {MAX_NOTE_CHARS} characters",
            code="invalid_parameter",
            param="note",
        )
    out["note"] = canonical.text(
        note, "note", max_chars=MAX_NOTE_CHARS, multiline=True, blank_ok=True
    )
    return out


class AdminSurface:
    def __init__(self, service: VideoService, admin_secret: str | None) -> None:
        self.service = service
        self._secret = admin_secret

    def check(self, request: Request) -> None:
        if not self._secret:
            raise NotFound("not found", code="not_found")
        sent = bearer(request) or ""
        if not hmac.compare_digest(sent.encode(), self._secret.encode()):
            raise AuthenticationError("invalid admin token", code="invalid_token")

    @staticmethod
    def ok(data: Any, status: int = 200) -> Response:
        return Response(
            json.dumps({"code": "success", "data": data}).encode(),
            status_code=status,
            media_type="application/json",
        )

    async def tokens(self, request: Request) -> Response:
        try:
            self.check(request)
            if request.method == "GET":
                listed = await self.service.store.list_tokens()
                return self.ok([await self._view(t) for t in listed])
            fields = await read_object(request, MAX_BODY)
            hook = _webhook_url(fields)
            if hook is not None and hook[0] is not None:
                # Checked before the token exists: a refused URL must not leave a token behind.
                await self.service.check_webhook_url(hook[0], "webhook_url")
            name = fields.get("name", "default")
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
                raise InvalidRequest(
                    f"name must be 1 to {MAX_NAME_CHARS} characters",
                    code="invalid_parameter",
                    param="name",
                )
            name = canonical.text(name, "name", max_chars=MAX_NAME_CHARS)
            record, token = await self.service.create_token(name, **_limits(fields, partial=False))
            if hook is not None:
                await self.service.set_webhook(record, hook[0], param="webhook_url")
            view = await self._view(record)
        except ReelgateError as exc:
            return error_response(exc)
        return self.ok({**view, "token": token.plaintext})

    async def _view(self, token: ApiToken) -> dict[str, Any]:
        endpoint = await self.service.store.webhook_endpoint(token.id)
        return {**token_view(token), "webhook_url": endpoint.url if endpoint else None}

    async def token(self, request: Request) -> Response:
        """PATCH: change limits; POST …/revoke and …/rotate."""
        ref = request.path_params["ref"]
        action = request.path_params.get("action")
        try:
            self.check(request)
            plaintext = None
            if request.method == "PATCH":
                fields = await read_object(request, MAX_BODY)
                hook = _webhook_url(fields)
                found = await self.service.store.set_token_limits(
                    ref, **_limits(fields, partial=True)
                )
                if found is not None and hook is not None:
                    await self.service.set_webhook(found, hook[0], param="webhook_url")
            elif action == "revoke":
                found = await self.service.revoke_token(ref)
            elif action == "quota":
                return await self._quota(request, ref)
            elif action == "rotate":
                fresh = new_token()
                found = await self.service.store.rotate_token(ref, fresh)
                plaintext = fresh.plaintext
            else:
                raise NotFound("not found", code="not_found")
            if found is None:
                raise NotFound(f"no single active token matches '{ref}'", code="token_not_found")
            self.service.forget_tokens()
        except ReelgateError as exc:
            return error_response(exc)
        try:
            view = await self._view(found)
        except ReelgateError as exc:
            return error_response(exc)
        if plaintext is not None:
            view["token"] = plaintext
        return self.ok(view)

    async def _quota(self, request: Request, ref: str) -> Response:
        """``{"grant": N}`` adds N (negative takes away), ``{"set": N}`` makes the balance N
        (both turn the quota on); ``{"limited": false}`` turns it off (charges are still
        recorded). ``note`` is kept on the ledger entry."""
        fields = await read_object(request, MAX_BODY)
        changes = quota_changes(fields)
        found = await self.service.store.change_quota(ref, self.service.clock(), **changes)
        if found is None:
            raise NotFound(f"no single token matches '{ref}'", code="token_not_found")
        self.service.forget_tokens()
        token, balance = found
        return self.ok({**await self._view(token), **balance_view(balance, self.service.currency)})

    async def ledger(self, request: Request) -> Response:
        """``GET /v1/admin/ledger?token=&limit=&after=``: ledger rows, newest first."""
        try:
            self.check(request)
            q = request.query_params
            owner_id = None
            if ref := q.get("token"):
                matches = [
                    t for t in await self.service.store.list_tokens() if ref in (t.id, t.prefix)
                ]
                if len(matches) != 1:
                    raise NotFound(f"no single token matches '{ref}'", code="token_not_found")
                owner_id = matches[0].id
            after = q.get("after") or None
            if after is not None and canonical.digits(after) is None:
                raise InvalidRequest(
                    "after must be a ledger entry id", code="invalid_parameter", param="after"
                )
            limit = list_limit(q.get("limit"))
            rows = await self.service.store.ledger_entries(
                owner_id, limit=limit + 1, before=canonical.digits(after)
            )
        except ReelgateError as exc:
            return error_response(exc)
        more = len(rows) > limit
        body = {
            "code": "success",
            "data": rows[:limit],
            "currency": self.service.currency,
            "has_more": more,
            "next_after": rows[limit - 1]["id"] if more else None,
        }
        return Response(json.dumps(body).encode(), media_type="application/json")

    async def usage(self, request: Request) -> Response:
        try:
            self.check(request)
            return await usage_response(self.service, request, None)
        except ReelgateError as exc:
            return error_response(exc)

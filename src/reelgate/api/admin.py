"""The admin API: tokens and their limits, and usage across every token.

Enabled by ``REELGATE_ADMIN_TOKEN``; its bearer secret is compared in constant time. Without it
every admin route answers 404, as if it did not exist. The same operations exist on the host as
``reelgate token …``.

    GET    /v1/admin/tokens                 list (never the secrets)
    POST   /v1/admin/tokens                 {"name","models","rpm","max_concurrent"}: plaintext once
    PATCH  /v1/admin/tokens/{ref}           change limits (null clears one)
    POST   /v1/admin/tokens/{ref}/revoke
    POST   /v1/admin/tokens/{ref}/rotate    a new secret, shown once
    GET    /v1/admin/usage                  ?from=&to=&group_by=model|day|token, every token
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.seed import bearer, usage_response
from reelgate.core.errors import AuthenticationError, InvalidRequest, NotFound, ReelgateError
from reelgate.core.ids import ApiToken, new_token
from reelgate.service import VideoService

MAX_BODY = 16 * 1024
_LIMITS = ("models", "rpm", "max_concurrent")


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
    }


def _limits(fields: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    unknown = sorted(set(fields) - {*_LIMITS, "name"})
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
            out[key] = tuple(value or ())
        else:
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise InvalidRequest(
                    f"{key} must be a positive integer or null", code="invalid_parameter", param=key
                )
            out[key] = value
    return out


class AdminSurface:
    def __init__(self, service: VideoService, admin_secret: str | None) -> None:
        self.service = service
        self._secret = admin_secret

    def _check(self, request: Request) -> None:
        if not self._secret:
            raise NotFound("not found", code="not_found")
        sent = bearer(request) or ""
        if not hmac.compare_digest(sent.encode(), self._secret.encode()):
            raise AuthenticationError("invalid admin token", code="invalid_token")

    @staticmethod
    def _ok(data: Any) -> Response:
        return Response(
            json.dumps({"code": "success", "data": data}).encode(), media_type="application/json"
        )

    async def tokens(self, request: Request) -> Response:
        try:
            self._check(request)
            if request.method == "GET":
                listed = await self.service.store.list_tokens()
                return self._ok([token_view(t) for t in listed])
            fields = await read_object(request, MAX_BODY)
            name = fields.get("name", "default")
            if not isinstance(name, str) or not 1 <= len(name) <= 200:
                raise InvalidRequest(
                    "name must be 1 to 200 characters", code="invalid_parameter", param="name"
                )
            record, token = await self.service.create_token(name, **_limits(fields, partial=False))
        except ReelgateError as exc:
            return error_response(exc)
        return self._ok({**token_view(record), "token": token.plaintext})

    async def token(self, request: Request) -> Response:
        """PATCH: change limits; POST …/revoke and …/rotate."""
        ref = request.path_params["ref"]
        action = request.path_params.get("action")
        try:
            self._check(request)
            plaintext = None
            if request.method == "PATCH":
                fields = await read_object(request, MAX_BODY)
                found = await self.service.store.set_token_limits(
                    ref, **_limits(fields, partial=True)
                )
            elif action == "revoke":
                found = await self.service.revoke_token(ref)
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
        view = token_view(found)
        if plaintext is not None:
            view["token"] = plaintext
        return self._ok(view)

    async def usage(self, request: Request) -> Response:
        try:
            self._check(request)
            return await usage_response(self.service, request, None)
        except ReelgateError as exc:
            return error_response(exc)

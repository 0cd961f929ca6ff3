"""The admin API for channels (credentials for one provider each): add, list, change,
enable, disable, probe.

Behind ``REELGATE_ADMIN_TOKEN`` like the rest of ``/v1/admin``. A channel's key is accepted on
add or change and never returned: views show a fingerprint instead. The same operations exist on
the host as ``reelgate channel …``.

    GET    /v1/admin/channels                      list, with health, caps and load
    POST   /v1/admin/channels                      {"name","provider","secret",...}
    GET    /v1/admin/channels/{name}
    PATCH  /v1/admin/channels/{name}               change fields (null clears an optional one)
    DELETE /v1/admin/channels/{name}               refused while unfinished tasks are on it
    POST   /v1/admin/channels/{name}/enable|disable|probe
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.admin import AdminSurface
from reelgate.api.body import json_object, read_limited, read_object
from reelgate.api.errors import error_response
from reelgate.core import canonical
from reelgate.core.canonical import INT32
from reelgate.core.channels import NAME_PATTERN, AdmissionCaps, Channel, StoredChannel
from reelgate.core.errors import InvalidRequest, NotFound, ReelgateError
from reelgate.core.request import MAX_MODEL_CHARS
from reelgate.service.channels import ChannelBook

# A secret may be a service-account JSON (a few KiB); the body has room for it and the rest.
MAX_SECRET_CHARS = 16 * 1024
MAX_BODY = 64 * 1024
URL_PATTERN = r"^(https?://[^\s\x00-\x1f\x7f]+)?$"
M = TypeVar("M", bound=BaseModel)
MAX_REASON_CHARS = 500
INT = INT32[1]  # the channels table's INTEGER columns


class ChannelFields(BaseModel):
    """What an admin may set on a channel (all optional: PATCH sends only changes). The
    channel's provider checks its region, options and secret (``ChannelBook.check``)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    # The credential as one string (an API key, ACCESS:SECRET, a service-account JSON);
    # ``api_key`` is its older name. The URL is parsed by the HTTP client whenever the channels
    # are rebuilt: a control character in it would fail every rebuild.
    api_key: str | None = Field(
        None,
        max_length=MAX_SECRET_CHARS,
        validation_alias=AliasChoices("secret", "api_key"),
    )
    region: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    base_url: str | None = Field(None, pattern=URL_PATTERN, max_length=2048)
    options: dict[str, Any] | None = None
    priority: int | None = Field(None, ge=-1000, le=1000)
    weight: int | None = Field(None, ge=1, le=1000)
    models: list[str] | None = None
    max_queued: int | None = Field(None, ge=1, le=INT)
    max_in_flight: int | None = Field(None, ge=1, le=INT)
    rpm: int | None = Field(None, ge=1, le=INT)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            return [canonical.text(m, "models", max_chars=MAX_MODEL_CHARS) for m in value]
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None

    @field_validator("base_url")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value:
            try:
                canonical.url(value, "base_url")
                httpx.URL(value)
            except InvalidRequest as exc:
                raise ValueError(f"not a usable URL ({exc.message})") from None
            except httpx.InvalidURL as exc:
                raise ValueError(f"not a usable URL ({exc})") from None
        return value


class NewChannel(ChannelFields):
    name: str = Field(pattern=NAME_PATTERN)
    provider: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    api_key: str = Field(
        max_length=MAX_SECRET_CHARS, validation_alias=AliasChoices("secret", "api_key")
    )
    enabled: bool = True


def parse_fields(model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        code = "unsupported_parameter" if err["type"] == "extra_forbidden" else "invalid_parameter"
        raise InvalidRequest(f"{param}: {err['msg']}", code=code, param=param) from None


def channel_view(
    row: StoredChannel, now: float, load: dict[str, int] | None, key: str | None
) -> dict[str, Any]:
    c = row.channel
    return {
        "name": c.name,
        "provider": c.provider,
        "source": c.source,
        "state": c.state(now).value,
        "usable_here": key is not None,
        "region": c.region,
        "base_url": c.base_url,
        "priority": c.priority,
        "weight": c.weight,
        "models": list(c.models) if c.models is not None else None,
        "options": dict(c.options),
        "max_queued": c.caps.max_queued,
        "max_in_flight": c.caps.max_in_flight,
        "rpm": c.caps.rpm,
        "enabled": c.enabled,
        "disabled_by": c.disabled_by or None,
        "disabled_reason": c.disabled_reason or None,
        "cooldown_until": c.cooldown_until if c.state(now).value == "cooling" else None,
        "next_probe_at": c.next_probe_at,
        "last_error": c.last_error or None,
        "key_fingerprint": key,
        "load": load or {"waiting": 0, "queued": 0, "running": 0},
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def new_channel(spec: NewChannel, defaults: AdmissionCaps) -> Channel:
    """The channel an admin adds; caps it leaves unset are its provider's defaults."""
    given = spec.model_fields_set
    return Channel(
        name=spec.name,
        provider=spec.provider,
        source="admin",
        region=spec.region or "",
        base_url=(spec.base_url or "").rstrip("/"),
        priority=spec.priority or 0,
        weight=spec.weight or 1,
        models=tuple(spec.models) if spec.models is not None else None,
        caps=AdmissionCaps(
            spec.max_queued if "max_queued" in given else defaults.max_queued,
            spec.max_in_flight if "max_in_flight" in given else defaults.max_in_flight,
            spec.rpm if "rpm" in given else defaults.rpm,
        ),
        options=spec.options or {},
        enabled=spec.enabled,
    )


def channel_changes(spec: ChannelFields) -> dict[str, Any]:
    """The columns a PATCH changes (``None`` clears the optional ones)."""
    changes: dict[str, Any] = {}
    for key in spec.model_fields_set:
        value = getattr(spec, key)
        if key in ("base_url", "priority", "weight", "api_key") and value is None:
            raise InvalidRequest(f"{key} cannot be null", code="invalid_parameter", param=key)
        if key in ("region", "options") and value is None:
            value = "" if key == "region" else {}  # null: back to the provider's default
        changes[key] = value.rstrip("/") if key == "base_url" else value
    return changes


class ChannelAdmin:
    def __init__(self, admin: AdminSurface, book: ChannelBook) -> None:
        self._admin = admin
        self.book = book

    async def _view(self, row: StoredChannel) -> dict[str, Any]:
        load = await self.book.store.channel_load()
        c = row.channel
        return channel_view(
            row, self.book.now(), load.get((c.provider, c.name)), self.book.key_fingerprint(c.name)
        )

    async def collection(self, request: Request) -> Response:
        try:
            self._admin.check(request)
            if request.method == "GET":
                load = await self.book.store.channel_load()
                rows = await self.book.store.list_channels()
                now = self.book.now()
                return self._admin.ok(
                    [
                        channel_view(
                            r,
                            now,
                            load.get((r.channel.provider, r.channel.name)),
                            self.book.key_fingerprint(r.channel.name),
                        )
                        for r in rows
                    ]
                )
            spec = parse_fields(NewChannel, await read_object(request, MAX_BODY))
            row = await self.book.add(
                new_channel(spec, self.book.default_caps(spec.provider)), spec.api_key
            )
            return self._admin.ok(await self._view(row), status=201)
        except ReelgateError as exc:
            return error_response(exc)

    async def item(self, request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params.get("action")
        try:
            self._admin.check(request)
            extra: dict[str, Any] = {}
            if action is None and request.method == "GET":
                found = await self.book.store.get_channel(name)
            elif action is None and request.method == "PATCH":
                spec = parse_fields(ChannelFields, await read_object(request, MAX_BODY))
                found = await self.book.update(name, channel_changes(spec))
            elif action is None and request.method == "DELETE":
                await self.book.remove(name)
                return self._admin.ok({"name": name, "deleted": True})
            elif action == "enable":
                found = await self.book.enable(name)
            elif action == "disable":
                raw = await read_limited(request, MAX_BODY)
                fields = await json_object(raw) if raw.strip() else {}
                reason = fields.get("reason", "disabled by an admin")
                if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
                    raise InvalidRequest(
                        f"reason must be a string of at most {MAX_REASON_CHARS} characters",
                        code="invalid_parameter",
                        param="reason",
                    )
                reason = canonical.text(reason, "reason", max_chars=MAX_REASON_CHARS)
                await self.book.disable(name, reason, by="admin")
                found = await self.book.store.get_channel(name)
            elif action == "probe":
                ok, error = await self.book.probe(name)
                extra = {"probe": {"ok": ok, "error": error or None}}
                found = await self.book.store.get_channel(name)
            else:
                raise NotFound("not found", code="not_found")
            if found is None:
                raise NotFound(f"no channel named '{name}'", code="channel_not_found")
            return self._admin.ok({**await self._view(found), **extra})
        except ReelgateError as exc:
            return error_response(exc)

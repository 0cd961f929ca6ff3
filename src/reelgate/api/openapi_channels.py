"""The OpenAPI part for the admin API's channels (``api/admin_channels.py``):
request bodies are that module's own Pydantic models; keys are accepted, never returned."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reelgate.api.admin_channels import MAX_BODY, ChannelFields, NewChannel
from reelgate.api.openapi_admin import ADMIN_ERRORS, TAG
from reelgate.api.openapi_common import ADMIN, ARK_MODEL, T0, body, fail, ok, path
from reelgate.core.channels import NAME_PATTERN

CHANNEL_NOT_FOUND = (404, "channel_not_found", "no channel named 'spare'", None)
TOO_LARGE = (413, "payload_too_large", f"request body is larger than {MAX_BODY} bytes", None)
# A channel name in the path that is not canonical text (edge check, before any look-up).
CHANNEL_SEGMENT = (
    400,
    "invalid_parameter",
    "'name' must not contain a control character (U+0000)",
    "name",
)
NAME = path("name", "The channel's name.", "backup")
# A channel's body is small (a secret, options): a larger one is refused before it is read.
TOO_LARGE = (413, "payload_too_large", f"request body is larger than {MAX_BODY} bytes", None)


class ChannelLoad(BaseModel):
    waiting: int = Field(description="In reelgate's queue for this channel.")
    queued: int = Field(description="Queued upstream.")
    running: int


class ChannelView(BaseModel):
    name: str
    provider: str
    source: Literal["config", "admin", "builtin"] = Field(
        description="config: from settings (only enable/disable here); admin: added here."
    )
    state: Literal["active", "cooling", "disabled"]
    usable_here: bool = Field(description="Whether this process holds a usable key.")
    region: str
    base_url: str
    priority: int
    weight: int
    models: list[str] | None = Field(description="null: every model of the provider.")
    options: dict[str, Any] = Field(description="The provider's own options of the channel.")
    max_queued: int | None
    max_in_flight: int | None
    rpm: int | None
    enabled: bool
    disabled_by: Literal["admin", "health"] | None
    disabled_reason: str | None
    cooldown_until: float | None = Field(description="Unix seconds, while cooling.")
    next_probe_at: float | None
    last_error: str | None
    key_fingerprint: str | None = Field(description="A short hash telling keys apart.")
    load: ChannelLoad
    created_at: float
    updated_at: float


class ProbeResult(BaseModel):
    ok: bool
    error: str | None


class ProbedChannel(ChannelView):
    probe: ProbeResult


class ChannelList(BaseModel):
    code: Literal["success"]
    data: list[ChannelView]


class ChannelEnvelope(BaseModel):
    code: Literal["success"]
    data: ChannelView


class ProbeEnvelope(BaseModel):
    code: Literal["success"]
    data: ProbedChannel


class ChannelDeleted(BaseModel):
    name: str
    deleted: Literal[True]


class DeletedEnvelope(BaseModel):
    code: Literal["success"]
    data: ChannelDeleted


class DisableReason(BaseModel):
    reason: str = Field("disabled by an admin", max_length=500)


MODELS: tuple[type[BaseModel], ...] = (
    NewChannel,
    ChannelFields,
    ChannelList,
    ChannelEnvelope,
    ProbeEnvelope,
    DeletedEnvelope,
    DisableReason,
)

CHANNEL = {
    "name": "backup",
    "provider": "ark",
    "source": "admin",
    "state": "active",
    "usable_here": True,
    "region": "ap-southeast",
    "base_url": "",
    "priority": -1,
    "weight": 1,
    "models": [ARK_MODEL],
    "options": {},
    "max_queued": 120,
    "max_in_flight": None,
    "rpm": None,
    "enabled": True,
    "disabled_by": None,
    "disabled_reason": None,
    "cooldown_until": None,
    "next_probe_at": None,
    "last_error": None,
    "key_fingerprint": "sha256:ab8460920d12",
    "load": {"waiting": 0, "queued": 3, "running": 2},
    "created_at": T0 + 0.91,
    "updated_at": T0 + 0.91,
}
DEFAULT = {
    **CHANNEL,
    "name": "default",
    "source": "config",
    "region": "cn-beijing",
    "priority": 0,
    "models": None,
    "options": {"timeout": 30.0},
    "key_fingerprint": "sha256:7c35c5a1785d",
}
DISABLED = {
    **CHANNEL,
    "state": "disabled",
    "enabled": False,
    "disabled_by": "admin",
    "disabled_reason": "maintenance",
}


def _one(
    summary: str, op_id: str, examples: dict[str, Any], *errors: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "tags": [TAG],
        "summary": summary,
        "operationId": op_id,
        "security": ADMIN,
        "parameters": [NAME],
        **extra,
        "responses": {
            "200": ok(
                ChannelEnvelope,
                "The channel",
                {k: {"code": "success", "data": v} for k, v in examples.items()},
            ),
            **fail(*ADMIN_ERRORS, CHANNEL_SEGMENT, CHANNEL_NOT_FOUND, *errors),
        },
    }


def paths() -> dict[str, Any]:
    from_settings = (
        409,
        "channel_from_settings",
        "channel 'default' is defined in settings; change it there (only enable and disable "
        "work here)",
        None,
    )
    return {
        "/v1/admin/channels": {
            "get": {
                "tags": [TAG],
                "summary": "Every channel with its health, caps and load",
                "operationId": "listChannels",
                "security": ADMIN,
                "responses": {
                    "200": ok(
                        ChannelList,
                        "Channels",
                        {"channels": {"code": "success", "data": [DEFAULT, CHANNEL]}},
                    ),
                    **fail(*ADMIN_ERRORS),
                },
            },
            "post": {
                "tags": [TAG],
                "summary": "Add a channel (its key is stored encrypted)",
                "operationId": "addChannel",
                "security": ADMIN,
                "requestBody": body(
                    NewChannel,
                    {
                        "backup channel": {
                            "name": "backup",
                            "provider": "ark",
                            "secret": "<your-ark-api-key>",
                            "region": "ap-southeast",
                            "priority": -1,
                            "models": [ARK_MODEL],
                        }
                    },
                ),
                "responses": {
                    "201": ok(
                        ChannelEnvelope,
                        "The channel, added",
                        {
                            "added": {
                                "code": "success",
                                "data": {
                                    **CHANNEL,
                                    "load": {"waiting": 0, "queued": 0, "running": 0},
                                },
                            }
                        },
                    ),
                    **fail(
                        (
                            400,
                            "invalid_parameter",
                            f"name: String should match pattern '{NAME_PATTERN}'",
                            "name",
                        ),
                        (
                            400,
                            "unsupported_parameter",
                            "colour: Extra inputs are not permitted",
                            "colour",
                        ),
                        *ADMIN_ERRORS,
                        (409, "channel_exists", "a channel named 'backup' exists", None),
                        TOO_LARGE,
                        (
                            409,
                            "encryption_key_missing",
                            "set REELGATE_ENCRYPTION_KEY (16+ characters) so that reelgate can "
                            "keep upstream keys encrypted in its database",
                            None,
                        ),
                    ),
                },
            },
        },
        "/v1/admin/channels/{name}": {
            "get": _one("One channel", "getChannel", {"channel": CHANNEL}),
            "patch": _one(
                "Change a channel (`secret` replaces the credential; null clears optional fields)",
                "changeChannel",
                {"changed": {**CHANNEL, "weight": 3}},
                from_settings,
                "invalid_json",
                (400, "invalid_parameter", "weight: Input should be a valid integer", "weight"),
                TOO_LARGE,
                requestBody=body(ChannelFields, {"heavier": {"weight": 3}}),
            ),
            "delete": {
                "tags": [TAG],
                "summary": "Remove a channel (refused while tasks are on it)",
                "operationId": "removeChannel",
                "security": ADMIN,
                "parameters": [NAME],
                "responses": {
                    "200": ok(
                        DeletedEnvelope,
                        "Removed",
                        {
                            "removed": {
                                "code": "success",
                                "data": {"name": "backup", "deleted": True},
                            }
                        },
                    ),
                    **fail(
                        *ADMIN_ERRORS,
                        CHANNEL_SEGMENT,
                        CHANNEL_NOT_FOUND,
                        (
                            409,
                            "channel_in_use",
                            "channel 'backup' still has 2 unfinished task(s); disable it, and "
                            "remove it once they have ended",
                            None,
                        ),
                        from_settings,
                    ),
                },
            },
        },
        "/v1/admin/channels/{name}/{action}": {
            "post": {
                "tags": [TAG],
                "summary": "Enable, disable (with a reason) or probe a channel",
                "description": "`probe` makes one cheap call with the key and re-enables a "
                "channel its health disabled when it works; its answer adds `probe`.",
                "operationId": "channelAction",
                "security": ADMIN,
                "parameters": [
                    NAME,
                    {
                        **path("action", "What to do.", "disable"),
                        "schema": {"enum": ["enable", "disable", "probe"]},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/DisableReason"},
                            "examples": {"disable": {"value": {"reason": "maintenance"}}},
                        }
                    },
                },
                "responses": {
                    "200": ok(
                        {
                            "anyOf": [
                                {"$ref": "#/components/schemas/ChannelEnvelope"},
                                {"$ref": "#/components/schemas/ProbeEnvelope"},
                            ]
                        },
                        "The channel (probe: with the probe's outcome)",
                        {
                            "disable": {"code": "success", "data": DISABLED},
                            "enable": {"code": "success", "data": CHANNEL},
                            "probe": {
                                "code": "success",
                                "data": {**DEFAULT, "probe": {"ok": True, "error": None}},
                            },
                        },
                    ),
                    **fail(
                        "invalid_json",
                        (
                            400,
                            "invalid_parameter",
                            "reason must be a string of at most 500 characters",
                            "reason",
                        ),
                        *ADMIN_ERRORS,
                        CHANNEL_SEGMENT,
                        CHANNEL_NOT_FOUND,
                    ),
                },
            }
        },
    }

"""The OpenAPI part for what a token holds besides its tasks: its webhook endpoint, each task's
deliveries, its usage report and the models it may use (``api/webhooks.py``, ``api/seed.py``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelgate.api.openapi_common import (
    ARK_MODEL,
    AUTH_ERRORS,
    BEARER,
    T0,
    TASK_ERRORS,
    body,
    fail,
    ok,
    path,
    query,
)
from reelgate.api.openapi_seed import TASK
from reelgate.api.seed import MAX_UNIX

HOOKS = "webhooks"
SECRET = "whsec_MltAwg32Lhfbr8zHtfvpChEdEr3dr7cVn0V5ETXZWRU="  # noqa: S105 - an example
HOOK_URL = "https://app.example.com/hooks/video"


class WebhookEndpoint(BaseModel):
    url: str | None = Field(description="Where the token's events go; null when none is set.")
    secret: str = Field(description="The `whsec_` signing secret (made on first use).")
    enabled: bool = Field(description="False with no URL, or once the endpoint answered 410.")
    disabled_reason: str | None
    previous_secret_valid_until: int | None = Field(
        description="After a rotation: until when (Unix seconds) the old secret also signs."
    )


class WebhookEnvelope(BaseModel):
    code: Literal["success"]
    data: WebhookEndpoint


class WebhookUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="An http(s) URL; private addresses are refused.")


class DeliveryAttempt(BaseModel):
    attempt: int
    at: int = Field(description="Unix seconds.")
    status: int | None = Field(description="The receiver's HTTP status; null when none came.")
    error: str | None
    duration_ms: int


class Delivery(BaseModel):
    id: str = Field(description="Also the `webhook-id` header: the same for every retry.")
    event: Literal["video.completed", "video.failed", "video.cancelled"]
    target: Literal["task", "endpoint"] = Field(
        description="The task's callback_url, or the token's endpoint."
    )
    url: str
    state: Literal["pending", "delivered", "failed", "disabled"]
    attempts: int
    next_attempt_at: int | None = Field(description="Unix seconds, while pending.")
    last_status: int | None
    last_error: str | None
    created_at: int
    log: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    code: Literal["success"]
    data: list[Delivery]


class DeliveryEnvelope(BaseModel):
    code: Literal["success"]
    data: Delivery


class UsageRow(BaseModel):
    key: str | int = Field(
        description="The model, the token id, or the day (Unix seconds of its midnight, UTC)."
    )
    tasks: int
    succeeded: int
    failed: int
    cancelled: int
    unfinished: int
    usage_tokens: int = Field(description="The upstream's usage tokens.")
    charged: int = Field(description="Net charges, including what unfinished tasks hold.")
    pending: int = Field(description="Held by unfinished tasks.")


class UsageReport(BaseModel):
    code: Literal["success"]
    data: list[UsageRow]
    from_: int = Field(alias="from", description="Unix seconds (inclusive).")
    to: int = Field(description="Unix seconds (exclusive).")
    group_by: Literal["model", "day", "token"]
    currency: str


class ChannelStates(BaseModel):
    active: int
    cooling: int
    disabled: int


class Offering(BaseModel):
    provider: str = Field(description="The provider that serves this offering.")
    model: str = Field(description="The provider's own id for the model.")
    home: bool = Field(description="Whether this is the model's home (its studio's own API).")
    channels: ChannelStates = Field(
        description="This gateway's channels of the provider that serve the model, by state."
    )


class SizeInfo(BaseModel):
    default: str = Field(description="WIDTHxHEIGHT made when the request names no size.")
    min_side: int
    max_side: int
    max_pixels: int
    allowed: list[str] | None = Field(
        description="The frame sizes the model makes (WIDTHxHEIGHT); a size with one of its "
        "resolutions' short side near one of its ratios maps to the nearest. Null: any size "
        "within `min_side`, `max_side` and `max_pixels` (even sides)."
    )


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"]
    provider: str
    description: str
    modes: list[Literal["t2v", "i2v"]]
    duration: dict[str, int] = Field(description="`min`, `max` and `default` seconds.")
    size: SizeInfo
    images: dict[str, int] = Field(description="`min` and `max` images.")
    aliases: list[str]
    remix: bool
    options: dict[str, dict[str, Any]] = Field(
        description="The options `metadata` takes: `type`, `description`, and `minimum`, "
        "`maximum` or `choices`."
    )
    sizes: dict[str, list[str]] | None = Field(None, description="Seedance: sizes per resolution.")
    resolutions: dict[str, dict[str, str]] | None = Field(
        None, description="Seedance: the size of each resolution and ratio (`720p` → `16:9`)."
    )
    image_modes: list[str] | None = Field(None, description="Seedance: how images may be used.")
    auto_duration: bool | None = Field(None, description="Seedance: whether duration -1 works.")
    offerings: list[Offering] = Field(
        description="Where the model is served: its home (the studio's own API) first, then "
        "other providers (aggregators) that offer it, each with its channels counted by state."
    )


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelInfo]


MODELS: tuple[type[BaseModel], ...] = (
    WebhookEnvelope,
    WebhookUrl,
    DeliveryList,
    DeliveryEnvelope,
    UsageReport,
    ModelList,
)

ENDPOINT = {
    "url": HOOK_URL,
    "secret": SECRET,
    "enabled": True,
    "disabled_reason": None,
    "previous_secret_valid_until": None,
}
DELIVERY_ID = "msg_2Yt8pQv3Lr6Nc1Xz"
DELIVERY = {
    "id": DELIVERY_ID,
    "event": "video.completed",
    "target": "endpoint",
    "url": HOOK_URL,
    "state": "delivered",
    "attempts": 2,
    "next_attempt_at": None,
    "last_status": 200,
    "last_error": None,
    "created_at": T0 + 52,
    "log": [
        {"attempt": 1, "at": T0 + 52, "status": 503, "error": None, "duration_ms": 84},
        {"attempt": 2, "at": T0 + 57, "status": 200, "error": None, "duration_ms": 61},
    ],
}
USAGE_ROW = {
    "key": ARK_MODEL,
    "tasks": 12,
    "succeeded": 10,
    "failed": 2,
    "cancelled": 1,
    "unfinished": 0,
    "usage_tokens": 1089000,
    "charged": 16335000,
    "pending": 0,
}


def usage_example(group_by: str, key: str | int) -> dict[str, Any]:
    return {
        "code": "success",
        "data": [{**USAGE_ROW, "key": key}],
        "from": T0 - 30 * 86400,
        "to": T0,
        "group_by": group_by,
        "currency": "µCNY",
    }


UNIX = {"type": "integer", "minimum": 0, "maximum": MAX_UNIX}
USAGE_PARAMETERS = [
    query("from", UNIX, "Unix seconds (default: 30 days before `to`)."),
    query("to", UNIX, "Unix seconds (default: now)."),
    query("group_by", {"enum": ["model", "day", "token"], "default": "model"}, "Grouping."),
]
USAGE_ERRORS = (
    (400, "invalid_parameter", "group_by must be model, day or token", "group_by"),
    (400, "invalid_parameter", "'from' must be before 'to'", "from"),
)
SANDBOX_MODEL = {
    "id": "sandbox-t2v",
    "object": "model",
    "provider": "sandbox",
    "description": "Local text-to-video renderer: the prompt drawn over moving frames.",
    "modes": ["t2v"],
    "duration": {"min": 1, "max": 10, "default": 3},
    "size": {
        "default": "640x360",
        "min_side": 64,
        "max_side": 1920,
        "max_pixels": 921600,
        "allowed": None,
    },
    "images": {"min": 0, "max": 0},
    "aliases": [],
    "remix": True,
    "options": {
        "fps": {
            "type": "int",
            "description": "frames per second of the output",
            "minimum": 8,
            "maximum": 30,
        }
    },
    "offerings": [
        {
            "provider": "sandbox",
            "model": "sandbox-t2v",
            "home": True,
            "channels": {"active": 1, "cooling": 0, "disabled": 0},
        }
    ],
}
ARK_MODEL_INFO = {
    "id": ARK_MODEL,
    "object": "model",
    "provider": "ark",
    "description": "Seedance 1.0 pro",
    "modes": ["i2v", "t2v"],
    "duration": {"min": 2, "max": 12, "default": 5},
    "size": {
        "default": "1920x1088",
        "min_side": 416,
        "max_side": 2541,
        "max_pixels": 2744280,
        "allowed": ["864x480", "1248x704", "1920x1088", "1440x1440", "1088x1920", "2176x928"],
    },
    "images": {"min": 0, "max": 2},
    "aliases": ["seedance-1-0-pro-250528"],
    "remix": False,
    "sizes": {"720p": ["1248x704", "1120x832", "960x960", "832x1120", "704x1248", "1504x640"]},
    "resolutions": {"1080p": {"16:9": "1920x1088", "1:1": "1440x1440", "9:16": "1088x1920"}},
    "image_modes": ["first_frame", "first_last_frame"],
    "auto_duration": False,
    "options": {
        "resolution": {
            "type": "str",
            "description": "output resolution",
            "choices": ["480p", "720p", "1080p"],
        },
        "seed": {
            "type": "int",
            "description": "random seed, -1 for random",
            "minimum": -1,
            "maximum": 4294967295,
        },
    },
    "offerings": [
        {
            "provider": "ark",
            "model": ARK_MODEL,
            "home": True,
            "channels": {"active": 2, "cooling": 0, "disabled": 1},
        }
    ],
}


def _webhook(method: str, summary: str, example: dict[str, Any], **extra: Any) -> dict[str, Any]:
    errors = (*AUTH_ERRORS, "url_not_allowed") if method == "put" else AUTH_ERRORS
    return {
        "tags": [HOOKS],
        "summary": summary,
        "operationId": f"{method}Webhook",
        "security": BEARER,
        **extra,
        "responses": {
            "200": ok(
                WebhookEnvelope, "The endpoint", {"endpoint": {"code": "success", "data": example}}
            ),
            **fail(*errors),
        },
    }


def paths() -> dict[str, Any]:
    return {
        "/v1/webhook": {
            "get": _webhook("get", "The token's webhook endpoint and secret", ENDPOINT),
            "put": _webhook(
                "put",
                "Set (or re-enable) the token's webhook endpoint",
                ENDPOINT,
                requestBody=body(WebhookUrl, {"endpoint": {"url": HOOK_URL}}),
            ),
            "delete": _webhook(
                "delete", "Remove the token's endpoint", {**ENDPOINT, "url": None, "enabled": False}
            ),
        },
        "/v1/webhook/rotate": {
            "post": {
                "tags": [HOOKS],
                "summary": "A new webhook secret (the old one signs for 24 h more)",
                "operationId": "rotateWebhookSecret",
                "security": BEARER,
                "responses": {
                    "200": ok(
                        WebhookEnvelope,
                        "The endpoint with its new secret",
                        {
                            "rotated": {
                                "code": "success",
                                "data": {
                                    **ENDPOINT,
                                    "secret": "whsec_nstCXzySweNM+lYOOFnjBcR7M2zgm7J/tACkY+9a6ek=",
                                    "previous_secret_valid_until": T0 + 86400,
                                },
                            }
                        },
                    ),
                    **fail(*AUTH_ERRORS),
                },
            }
        },
        "/v1/video/generations/{task_id}/deliveries": {
            "get": {
                "tags": [HOOKS],
                "summary": "The task's webhook deliveries with their attempts",
                "operationId": "listDeliveries",
                "security": BEARER,
                "parameters": [TASK],
                "responses": {
                    "200": ok(
                        DeliveryList,
                        "Deliveries, oldest first",
                        {
                            "delivered": {"code": "success", "data": [DELIVERY]},
                            "none yet": {"code": "success", "data": []},
                        },
                    ),
                    **fail(*AUTH_ERRORS, *TASK_ERRORS),
                },
            }
        },
        "/v1/video/generations/{task_id}/deliveries/{delivery_id}/replay": {
            "post": {
                "tags": [HOOKS],
                "summary": "Send a webhook delivery again (same id and body)",
                "operationId": "replayDelivery",
                "security": BEARER,
                "parameters": [TASK, path("delivery_id", "A delivery's id.", DELIVERY_ID)],
                "responses": {
                    "200": ok(
                        DeliveryEnvelope,
                        "The delivery, pending again",
                        {
                            "pending": {
                                "code": "success",
                                "data": {
                                    **DELIVERY,
                                    "state": "pending",
                                    "next_attempt_at": T0 + 600,
                                },
                            }
                        },
                    ),
                    **fail(
                        *AUTH_ERRORS,
                        *TASK_ERRORS,
                        (
                            404,
                            "delivery_not_found",
                            "no delivery 'msg_nope' for this task",
                            None,
                        ),
                    ),
                },
            }
        },
        "/v1/usage": {
            "get": {
                "tags": ["usage"],
                "summary": "The token's tasks counted per model, day or token, with their cost",
                "operationId": "getUsage",
                "security": BEARER,
                "parameters": USAGE_PARAMETERS,
                "responses": {
                    "200": ok(
                        UsageReport,
                        "Counts per group",
                        {
                            "per model": usage_example("model", ARK_MODEL),
                            "per day": usage_example("day", T0 - 86400),
                        },
                    ),
                    **fail(*USAGE_ERRORS, *AUTH_ERRORS),
                },
            }
        },
        "/v1/models": {
            "get": {
                "tags": ["models"],
                "summary": "The models this gateway serves, with their capabilities",
                "operationId": "listModels",
                "security": BEARER,
                "responses": {
                    "200": ok(
                        ModelList,
                        "Models",
                        {"models": {"object": "list", "data": [SANDBOX_MODEL, ARK_MODEL_INFO]}},
                    ),
                    **fail(*AUTH_ERRORS),
                },
            }
        },
    }

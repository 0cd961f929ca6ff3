"""The OpenAPI 3.1 document (assembled from the parts per surface, schemas from Pydantic models)
and the /docs page: Swagger UI from the swagger-ui-bundle package, served by reelgate itself.

That Swagger UI (4.x) renders OpenAPI 3.0 only, so /docs is handed the same document spelled
as 3.0 (``swagger_document``); /openapi.json stays 3.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from reelgate import __version__
from reelgate.api import (
    openapi_account,
    openapi_admin,
    openapi_ark,
    openapi_billing,
    openapi_channels,
    openapi_common,
    openapi_openai,
    openapi_seed,
)
from reelgate.api.openapi_common import REF, ok
from reelgate.api.openapi_seed import TaskData, task

PARTS = (
    openapi_seed,
    openapi_account,
    openapi_billing,
    openapi_openai,
    openapi_ark,
    openapi_admin,
    openapi_channels,
)
TAGS = [
    {"name": "tasks", "description": "The seed's API (new-api clients): create and track tasks."},
    {"name": "webhooks", "description": "Signed notifications of a task's end, and their log."},
    {"name": "usage", "description": "What a token used."},
    {"name": "billing", "description": "Prices and quota (see README, Prices and quota)."},
    {"name": "models", "description": "What this gateway can make."},
    {"name": "openai", "description": "`/v1/videos` as the official openai SDK speaks it."},
    {"name": "ark", "description": "Volcengine Ark's own API, through reelgate's queue."},
    {"name": "admin", "description": "Operators: tokens, quota, ledger, usage, channels."},
    {"name": "operations", "description": "Probes and metrics (no token)."},
]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description='`database`, `migrations`, `worker`: "ok" or what is wrong.'
    )


class EventData(TaskData):
    id: str = Field(description="The video's (task's) id, where OpenAI's events carry it.")


class WebhookEvent(BaseModel):
    """What reelgate posts to a webhook (Standard Webhooks headers: `webhook-id`,
    `webhook-timestamp`, `webhook-signature`): OpenAI's event shape, `data` the task as the
    status GET shows it, after its `id`."""

    id: str = Field(description="The delivery id, also sent as `webhook-id`.")
    object: Literal["event"]
    type: Literal["video.completed", "video.failed", "video.cancelled"]
    created_at: int
    data: EventData


def _operations() -> dict[str, Any]:
    def probe(summary: str, op_id: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["operations"],
                "summary": summary,
                "operationId": op_id,
                "security": [],
                "responses": responses,
            }
        }

    checks = {"database": "ok", "migrations": "ok", "worker": "ok"}
    stale = {**checks, "worker": "last seen 94 s ago (stale)"}
    return {
        "/healthz": probe(
            "Liveness (no I/O)", "healthz", {"200": ok(Health, "Alive", {"ok": {"status": "ok"}})}
        ),
        "/readyz": probe(
            "Readiness: database, migrations and a live worker",
            "readyz",
            {
                "200": ok(Readiness, "Ready", {"ready": {"status": "ready", "checks": checks}}),
                "503": ok(
                    Readiness,
                    "Not ready; `checks` names what is wrong",
                    {"stale worker": {"status": "not_ready", "checks": stale}},
                ),
            },
        ),
        "/metrics": probe(
            "Prometheus metrics of this process (text exposition format)",
            "metrics",
            {
                "200": {
                    "description": "Metrics",
                    "content": {
                        "text/plain": {
                            "schema": {"type": "string"},
                            "example": "# TYPE reelgate_tasks gauge\n"
                            'reelgate_tasks{model="sandbox-t2v",provider="sandbox",'
                            'status="queued"} 2.0\n',
                        }
                    },
                }
            },
        ),
    }


def _merge(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for part in parts:
        for path, operations in part.items():
            taken = paths.setdefault(path, {})
            assert not set(taken) & set(operations), f"{path} is documented twice"
            taken.update(operations)
    return paths


def build_document() -> dict[str, Any]:
    models = [m for part in (openapi_common, *PARTS) for m in part.MODELS]
    _, defs = models_json_schema(
        [(m, "validation") for m in (*models, Health, Readiness, WebhookEvent)],
        ref_template=REF,
    )
    done = task("success")
    event = {"id": openapi_account.DELIVERY_ID, "object": "event", "type": "video.completed"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reelgate",
            "version": __version__,
            "description": "A durable gateway for asynchronous AI video generation. Every route "
            "but the probes takes `Authorization: Bearer <token>`: an API token (`rg_…`), or "
            "REELGATE_ADMIN_TOKEN for `/v1/admin`.",
        },
        "tags": TAGS,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`rg_…`).",
                },
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "REELGATE_ADMIN_TOKEN; without it the admin routes answer "
                    "404 as if they did not exist.",
                },
            },
        },
        "paths": _merge([*(part.paths() for part in PARTS), _operations()]),
        "webhooks": {
            "videoEvent": {
                "post": {
                    "tags": ["webhooks"],
                    "summary": "A task ended (sent to its callback_url and the token's endpoint)",
                    "operationId": "videoEvent",
                    "requestBody": {
                        "required": True,
                        "content": openapi_common.content(
                            openapi_common.ref(WebhookEvent),
                            {
                                "completed": {
                                    **event,
                                    "created_at": done["finish_time"],
                                    "data": {"id": done["task_id"], **done},
                                }
                            },
                        ),
                    },
                    "responses": {
                        "200": {"description": "Received (any 2xx)"},
                        "410": {"description": "Gone: the token's endpoint is disabled"},
                    },
                }
            }
        },
    }


def swagger_document(document: dict[str, Any]) -> dict[str, Any]:
    """The same document as OpenAPI 3.0.3, for a Swagger UI that renders only 3.0: nullable
    instead of a null type, enum instead of const, one schema example; no top-level webhooks."""
    out = {k: _as_30(v) for k, v in document.items() if k != "webhooks"}
    out["openapi"] = "3.0.3"
    return out


def _as_30(node: Any) -> Any:
    if isinstance(node, list):
        return [_as_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "value"):
            out[key] = value  # example values are data, not schemas
        elif key == "examples" and isinstance(value, list):
            out["example"] = value[0]  # a schema's examples (JSON Schema) become one example
        elif key == "examples":
            out[key] = value  # a media type's named examples are valid 3.0 as they are
        else:
            out[key] = _as_30(value)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("type") == "null":
        del out["type"]
        out.update(nullable=True, enum=[None])
    variants = out.get("anyOf")
    if variants is not None and {"nullable": True, "enum": [None]} in variants:
        rest = [v for v in variants if v != {"nullable": True, "enum": [None]}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out.update(rest[0])
        elif len(rest) == 1:
            out["allOf"] = rest
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    return out


_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reelgate API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>"""


class OpenApi:
    def __init__(self) -> None:
        self.document = build_document()
        # The spec goes inline; validatorUrl null: no badge fetched from validator.swagger.io.
        config = {
            "spec": swagger_document(self.document),
            "dom_id": "#swagger-ui",
            "validatorUrl": None,
            "deepLinking": True,
        }
        self._init_js = f"window.ui = SwaggerUIBundle({json.dumps(config)});\n"

    async def spec(self, _request: Request) -> Response:
        return JSONResponse(self.document)

    async def docs(self, _request: Request) -> Response:
        return HTMLResponse(_DOCS_HTML)

    async def init_js(self, _request: Request) -> Response:
        return Response(self._init_js, media_type="text/javascript")

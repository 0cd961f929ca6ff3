"""The OpenAPI document (built from Pydantic models, no framework magic) and the /docs page."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from reelgate import __version__
from reelgate.api import openapi_billing

REF = "#/components/schemas/{model}"


class TaskError(BaseModel):
    code: str = Field(examples=["sandbox_failure"])
    message: str = Field(examples=["task failed"])


class TaskData(BaseModel):
    task_id: str = Field(examples=["task_3q5mY0a1bC2dE3fG4hI5jK6lM7nO8pQ9"])
    action: Literal["generate"]
    status: Literal["queued", "in_progress", "success", "failure"]
    progress: Literal["10%", "50%", "100%"]
    fail_reason: str = Field(
        description="The video URL on success, the error text on failure, empty otherwise."
    )
    submit_time: int = Field(description="Unix seconds; 0 when unset.")
    start_time: int = Field(description="Unix seconds; 0 when unset.")
    finish_time: int = Field(description="Unix seconds; 0 when unset.")
    model: str
    result_url: str = Field(description="The video URL on success (same as fail_reason).")
    last_frame_url: str = Field(description="URL of the last frame as PNG, when available.")
    error: TaskError | None


class TaskEnvelope(BaseModel):
    code: Literal["success"]
    data: TaskData


class CreateRequest(BaseModel):
    model: str = Field(examples=["sandbox-t2v"])
    prompt: str = Field(min_length=1, examples=["a paper boat on a rainy street"])
    image: str | None = Field(None, description="First frame: http(s) URL or data: URI.")
    images: list[str] | None = Field(None, description="Several images (URLs or data: URIs).")
    input_reference: str | None = Field(None, description="Alias of image.")
    duration: int | None = Field(None, description="Seconds.", examples=[5])
    seconds: str | None = Field(None, description="Seconds, as a string.", examples=["5"])
    size: str | None = Field(None, pattern=r"^\d{2,5}x\d{2,5}$", examples=["1280x720"])
    metadata: dict[str, Any] | None = Field(
        None, description="Provider options; see GET /v1/models for each model's list."
    )


class CreateResponse(BaseModel):
    id: str
    task_id: str
    object: Literal["video"]
    model: str
    status: Literal["queued"]
    progress: int
    created_at: int


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine code.", examples=["task_not_found"])
    message: str = Field(description="Human explanation.")
    data: None = None
    param: str | None = Field(None, description="The offending parameter, when there is one.")


class TaskPage(BaseModel):
    code: Literal["success"]
    data: list[TaskData] = Field(description="The token's own tasks, newest first.")
    has_more: bool
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]


_SCHEMAS: tuple[type[BaseModel], ...] = (
    TaskEnvelope,
    TaskPage,
    CreateRequest,
    CreateResponse,
    ErrorBody,
    ModelList,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(ErrorBody, "Error") for s in statuses}


def build_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in (*_SCHEMAS, *openapi_billing.MODELS)],
        ref_template=REF,
    )
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    task_id = {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    create_body = {
        "required": True,
        "content": {
            "application/json": {"schema": _ref(CreateRequest)},
            "multipart/form-data": {"schema": _ref(CreateRequest)},
        },
    }

    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    def header(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "schema": {"type": "string"},
            "description": description,
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reelgate",
            "version": __version__,
            "description": "A durable gateway for asynchronous AI video generation.",
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/video/generations": {
                "post": {
                    "summary": "Create a video generation task",
                    "operationId": "createVideoGeneration",
                    "security": security,
                    "parameters": [
                        header(
                            "Idempotency-Key",
                            "Same key and body within 24 h: the same task, no second one.",
                        )
                    ],
                    "requestBody": create_body,
                    "responses": {
                        "200": _json(CreateResponse, "The task was accepted"),
                        **_errors(400, 401, 402, 409, 413, 415),
                    },
                },
                "get": {
                    "summary": "List the token's tasks (newest first, cursor paging)",
                    "operationId": "listVideoGenerations",
                    "security": security,
                    "parameters": [
                        query(
                            "status",
                            {"enum": ["queued", "in_progress", "success", "failure"]},
                            "Only tasks in this status.",
                        ),
                        query("model", {"type": "string"}, "Only tasks of this model."),
                        query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                            "Page size.",
                        ),
                        query("after", {"type": "string"}, "The last task id of the page before."),
                    ],
                    "responses": {"200": _json(TaskPage, "A page of tasks"), **_errors(400, 401)},
                },
            },
            "/v1/video/generations/{task_id}/cancel": {
                "post": {
                    "summary": "Cancel a queued task",
                    "operationId": "cancelVideoGeneration",
                    "security": security,
                    "parameters": [task_id],
                    "responses": {
                        "200": _json(TaskEnvelope, "The task, now failure/cancelled"),
                        **_errors(401, 404, 409),
                    },
                }
            },
            "/v1/video/generations/{task_id}/events": {
                "get": {
                    "summary": "Stream the task's status changes (server-sent events)",
                    "operationId": "streamVideoGeneration",
                    "security": security,
                    "parameters": [
                        task_id,
                        header("Last-Event-ID", "Resume after this event id (a task version)."),
                    ],
                    "responses": {
                        "200": {
                            "description": "`event: status` with the same data object as the "
                            "GET, until the terminal status",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/video/generations/{task_id}": {
                "get": {
                    "summary": "Get a task's status and result",
                    "operationId": "getVideoGeneration",
                    "security": security,
                    "parameters": [
                        task_id,
                        query(
                            "wait",
                            {"type": "number", "minimum": 0, "maximum": 60},
                            "Long-poll: answer at once on a status change, else after N s.",
                        ),
                        header("Prefer", "`wait=N`, the same as ?wait=N."),
                        header(
                            "If-None-Match", "An ETag from an earlier answer: 304 if unchanged."
                        ),
                    ],
                    "responses": {
                        "200": _json(TaskEnvelope, "The task"),
                        "304": {"description": "Unchanged since the ETag sent"},
                        **_errors(400, 401, 404),
                    },
                }
            },
            "/v1/video/generations/{task_id}/content": {
                "get": {
                    "summary": "The task's file (Range supported)",
                    "operationId": "getVideoGenerationContent",
                    "security": security,
                    "parameters": [
                        task_id,
                        query("variant", {"enum": ["video", "last_frame"]}, "Which file."),
                    ],
                    "responses": {
                        "200": {"description": "The file"},
                        "206": {"description": "Part of the file"},
                        "307": {"description": "Not kept here: the upstream's URL"},
                        **_errors(400, 401, 404, 409),
                    },
                }
            },
            "/v1/video/generations/{task_id}/deliveries": {
                "get": {
                    "summary": "The task's webhook deliveries with their attempts",
                    "operationId": "listDeliveries",
                    "security": security,
                    "parameters": [task_id],
                    "responses": {"200": {"description": "Deliveries"}, **_errors(401, 404)},
                }
            },
            "/v1/webhook": {
                method: {
                    "summary": f"{verb} the token's webhook endpoint and secret",
                    "operationId": f"{method}Webhook",
                    "security": security,
                    "responses": {"200": {"description": "The endpoint"}, **_errors(400, 401)},
                }
                for method, verb in (("get", "Get"), ("put", "Set"), ("delete", "Remove"))
            },
            "/v1/webhook/rotate": {
                "post": {
                    "summary": "A new webhook secret (the old one signs for 24 h more)",
                    "operationId": "rotateWebhookSecret",
                    "security": security,
                    "responses": {"200": {"description": "The endpoint"}, **_errors(401)},
                }
            },
            "/v1/video/generations/{task_id}/deliveries/{delivery_id}/replay": {
                "post": {
                    "summary": "Send a webhook delivery again (same id and body)",
                    "operationId": "replayDelivery",
                    "security": security,
                    "parameters": [
                        task_id,
                        {
                            "name": "delivery_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"200": {"description": "The delivery"}, **_errors(401, 404)},
                }
            },
            "/v1/videos/{video_id}/remix": {
                "post": {
                    "summary": "Remake a completed video with another prompt (where supported)",
                    "operationId": "remixVideo",
                    "security": security,
                    "parameters": [{**task_id, "name": "video_id"}],
                    "responses": {
                        "200": {"description": "The new Video"},
                        **_errors(400, 401, 404, 409),
                    },
                }
            },
            "/v1/videos": {
                "post": {
                    "summary": "Create a video (OpenAI-style; multipart or JSON)",
                    "operationId": "createVideo",
                    "security": security,
                    "responses": {"200": {"description": "A Video object"}, **_errors(400, 401)},
                },
                "get": {
                    "summary": "List videos (after, limit, order)",
                    "operationId": "listVideos",
                    "security": security,
                    "responses": {"200": {"description": "A list of Videos"}, **_errors(400, 401)},
                },
            },
            "/v1/videos/{video_id}": {
                "get": {
                    "summary": "Retrieve a video (OpenAI-style)",
                    "operationId": "retrieveVideo",
                    "security": security,
                    "parameters": [{**task_id, "name": "video_id"}],
                    "responses": {"200": {"description": "A Video object"}, **_errors(401, 404)},
                },
                "delete": {
                    "summary": "Delete a video (cancels a waiting one)",
                    "operationId": "deleteVideo",
                    "security": security,
                    "parameters": [{**task_id, "name": "video_id"}],
                    "responses": {"200": {"description": "Deleted"}, **_errors(401, 404, 409)},
                },
            },
            "/v1/videos/{video_id}/content": {
                "get": {
                    "summary": "Download a video, thumbnail or spritesheet",
                    "operationId": "downloadVideoContent",
                    "security": security,
                    "parameters": [
                        {**task_id, "name": "video_id"},
                        query("variant", {"enum": ["video", "thumbnail", "spritesheet"]}, "Which."),
                    ],
                    "responses": {"200": {"description": "Bytes"}, **_errors(400, 401, 404, 409)},
                }
            },
            "/v1/usage": {
                "get": {
                    "summary": "The token's tasks counted per model, day or token",
                    "operationId": "getUsage",
                    "security": security,
                    "parameters": [
                        query("from", {"type": "integer"}, "Unix seconds (default: 30 days ago)."),
                        query("to", {"type": "integer"}, "Unix seconds (default: now)."),
                        query("group_by", {"enum": ["model", "day", "token"]}, "Grouping."),
                    ],
                    "responses": {"200": {"description": "Counts"}, **_errors(400, 401)},
                }
            },
            **openapi_billing.paths(security, create_body, _json, _errors),
            "/v1/models": {
                "get": {
                    "summary": "List available models and their capabilities",
                    "operationId": "listModels",
                    "security": security,
                    "responses": {"200": _json(ModelList, "Models"), **_errors(401)},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "healthz",
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: database, migrations and a live worker",
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "Ready; every check is ok"},
                        "503": {"description": "Not ready; `checks` names what is wrong"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this process (text exposition format)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }


_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reelgate API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>"""

_DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});\n"


class OpenApi:
    def __init__(self) -> None:
        self.document = build_document()

    async def spec(self, _request: Request) -> Response:
        return JSONResponse(self.document)

    async def docs(self, _request: Request) -> Response:
        return HTMLResponse(_DOCS_HTML)

    async def init_js(self, _request: Request) -> Response:
        return Response(_DOCS_INIT, media_type="text/javascript")

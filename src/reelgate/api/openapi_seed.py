"""The OpenAPI part for the seed's surface: create, get, list, cancel a task, its events and its
file (``/v1/video/generations…``), with the shapes ``api/seed.py`` renders."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reelgate.api.openapi_common import (
    ARK_MODEL,
    AUTH_ERRORS,
    BEARER,
    CANONICAL_INPUT,
    CREATE_ERRORS,
    FRAME_URL,
    IDEMPOTENCY_KEY,
    LIMIT,
    OTHER_TASK_ID,
    RANGE_NOT_SATISFIABLE,
    T0,
    TASK_ERRORS,
    TASK_ID,
    VIDEO_URL,
    binary,
    body,
    fail,
    header,
    ok,
    path,
    query,
)

TAG = "tasks"
TASK = path("task_id", "A task id from the create answer (`task_…`).", TASK_ID)
ARK_URL = (
    "https://ark-content-generation-cn-beijing.tos-cn-beijing.volces.com/doubao-seedance-1-0-pro/"
    "02176393760000000000000000000000000000000000000.mp4?X-Tos-Expires=86400&X-Tos-Signature=9f2c"
)


class TaskError(BaseModel):
    code: str = Field(description="Why the task failed: `cancelled`, `expired`, `sandbox_failure`…")
    message: str


class TaskData(BaseModel):
    task_id: str
    action: Literal["generate"]
    status: Literal["queued", "in_progress", "success", "failure"]
    progress: Literal["10%", "50%", "100%"]
    fail_reason: str = Field(
        description="The upstream's video URL on success (reelgate's link with "
        "REELGATE_DURABLE_FAIL_REASON), the error text on failure, empty otherwise."
    )
    submit_time: int = Field(description="Unix seconds.")
    start_time: int = Field(description="Unix seconds; 0 until it starts.")
    finish_time: int = Field(description="Unix seconds; 0 until it ends.")
    model: str
    result_url: str = Field(
        description="The video URL on success (reelgate's durable copy once stored), else empty."
    )
    last_frame_url: str = Field(description="The last frame (PNG) on success, when there is one.")
    error: TaskError | None = Field(description="Set on failure only.")
    estimated_progress: int = Field(description="0-100, estimated from the model's past tasks.")
    eta_seconds: int = Field(description="Estimated seconds left (0 once finished).")


class TaskEnvelope(BaseModel):
    code: Literal["success"]
    data: TaskData


class TaskPage(BaseModel):
    code: Literal["success"]
    data: list[TaskData] = Field(description="The token's own tasks, newest first.")
    has_more: bool
    next_after: str | None = Field(description="Pass as `after` for the next page.")


class CreateRequest(BaseModel):
    model: str = Field(description="See GET /v1/models (either cloud's name, or an alias).")
    prompt: str = Field(min_length=1, max_length=4000)
    image: str | None = Field(None, description="First frame: an http(s) URL or a data: URI.")
    images: list[str] | None = Field(
        None, description="Several images (in a form: repeat `images` or `images[]`)."
    )
    input_reference: str | None = Field(None, description="The same as `image`.")
    duration: int | None = Field(None, description="Seconds.")
    seconds: str | None = Field(None, description="Seconds, as a string (as OpenAI sends it).")
    size: str | None = Field(None, pattern=r"^\d{2,5}x\d{2,5}$", description="WIDTHxHEIGHT.")
    metadata: dict[str, Any] | None = Field(
        None, description="Provider options (a JSON string in a form); see GET /v1/models."
    )
    callback_url: str | None = Field(
        None, description="A webhook for this task's end; private addresses are refused."
    )


class CreateResponse(BaseModel):
    id: str
    task_id: str = Field(description="The same as `id`.")
    object: Literal["video"]
    model: str = Field(description="The model's catalogue name (an alias is resolved).")
    status: Literal["queued"]
    progress: int
    created_at: int = Field(description="Unix seconds.")


MODELS: tuple[type[BaseModel], ...] = (TaskEnvelope, TaskPage, CreateRequest, CreateResponse)

CREATE_EXAMPLES = {
    "text to video": {
        "model": "sandbox-t2v",
        "prompt": "a paper boat on a rainy street",
        "duration": 2,
        "size": "640x360",
    },
    "Seedance, first frame, options": {
        "model": ARK_MODEL,
        "prompt": "the boat drifts towards the camera",
        "image": "https://images.example.com/boat.png",
        "duration": 5,
        "size": "1280x720",
        "metadata": {"seed": 42, "camera_fixed": False},
        "callback_url": "https://app.example.com/hooks/video",
    },
}


def task(status: str, **changes: Any) -> dict[str, Any]:
    """An example ``data`` object in ``status`` (queued, in_progress, success, failure)."""
    base: dict[str, Any] = {
        "task_id": TASK_ID,
        "action": "generate",
        "status": status,
        "progress": {"queued": "10%", "in_progress": "50%"}.get(status, "100%"),
        "fail_reason": "",
        "submit_time": T0,
        "start_time": 0 if status == "queued" else T0 + 4,
        "finish_time": T0 + 52 if status in ("success", "failure") else 0,
        "model": ARK_MODEL,
        "result_url": "",
        "last_frame_url": "",
        "error": None,
        "estimated_progress": {"queued": 0, "in_progress": 38}.get(status, 100),
        "eta_seconds": {"queued": 55, "in_progress": 31}.get(status, 0),
    }
    if status == "success":
        base.update(fail_reason=ARK_URL, result_url=VIDEO_URL, last_frame_url=FRAME_URL)
    if status == "failure":
        message = "The request failed because the output video may contain sensitive information."
        base.update(fail_reason=message, error={"code": "content_moderation", "message": message})
    return {**base, **changes}


CANCELLED = task(
    "failure",
    start_time=0,
    finish_time=T0 + 3,
    fail_reason="cancelled by the client",
    error={"code": "cancelled", "message": "cancelled by the client"},
)
TASK_EXAMPLES = {
    "queued": {"code": "success", "data": task("queued")},
    "in progress": {"code": "success", "data": task("in_progress")},
    "success": {"code": "success", "data": task("success")},
    "failure": {"code": "success", "data": task("failure")},
}
POLL_HEADERS = {
    "ETag": "Weak; send it back as If-None-Match to get 304 while nothing changed.",
    "Retry-After": "Unfinished tasks: when to look again (s).",
    "openai-poll-after-ms": "Unfinished tasks: the same, in milliseconds.",
}


# One event of the stream, as event-stream readers hand it over (OpenAPI 3.2's `itemSchema` shape;
# 3.1 has no keyword for the items of a stream, so `schema` describes each event).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"const": "status"},
        "id": {"type": "string", "description": "The task's version: send it as Last-Event-ID."},
        "data": {
            "type": "string",
            "description": "JSON: the same object as the status GET's `data` (TaskData).",
        },
        "retry": {"type": "integer", "description": "Reconnection delay (ms)."},
    },
}


def paths() -> dict[str, Any]:
    return {
        "/v1/video/generations": {
            "post": {
                "tags": [TAG],
                "summary": "Create a video generation task",
                "description": "JSON or multipart/form-data (file parts become data: URIs). "
                "Everything is checked against the model's capabilities: an option the model "
                "does not take is a 400 naming it. " + CANONICAL_INPUT,
                "operationId": "createVideoGeneration",
                "security": BEARER,
                "parameters": [header("Idempotency-Key", IDEMPOTENCY_KEY)],
                "requestBody": body(CreateRequest, CREATE_EXAMPLES, form=True),
                "responses": {
                    "200": ok(
                        CreateResponse,
                        "The task was accepted",
                        {
                            "queued": {
                                "id": TASK_ID,
                                "task_id": TASK_ID,
                                "object": "video",
                                "model": ARK_MODEL,
                                "status": "queued",
                                "progress": 0,
                                "created_at": T0,
                            }
                        },
                    ),
                    **fail(*CREATE_ERRORS, "invalid_idempotency_key"),
                },
            },
            "get": {
                "tags": [TAG],
                "summary": "List the token's tasks (newest first, cursor paging)",
                "operationId": "listVideoGenerations",
                "security": BEARER,
                "parameters": [
                    query(
                        "status",
                        {"enum": ["queued", "in_progress", "success", "failure"]},
                        "Only tasks in this status.",
                    ),
                    query("model", {"type": "string"}, "Only tasks of this model."),
                    LIMIT,
                    query("after", {"type": "string"}, "`next_after` of the page before."),
                ],
                "responses": {
                    "200": ok(
                        TaskPage,
                        "A page of tasks",
                        {
                            "first page": {
                                "code": "success",
                                "data": [
                                    task("in_progress"),
                                    {**CANCELLED, "task_id": OTHER_TASK_ID},
                                ],
                                "has_more": True,
                                "next_after": OTHER_TASK_ID,
                            },
                            "last page": {
                                "code": "success",
                                "data": [task("success")],
                                "has_more": False,
                                "next_after": None,
                            },
                        },
                    ),
                    **fail(
                        "invalid_limit",
                        (
                            400,
                            "unsupported_parameter",
                            "unknown query parameter 'page'",
                            "page",
                        ),
                        *AUTH_ERRORS,
                    ),
                },
            },
        },
        "/v1/video/generations/{task_id}": {
            "get": {
                "tags": [TAG],
                "summary": "Get a task's status and result",
                "description": "Served from in-process caches. With `wait` (or `Prefer: wait=N`) "
                "it answers at once when the status changes, else after the wait.",
                "operationId": "getVideoGeneration",
                "security": BEARER,
                "parameters": [
                    TASK,
                    query(
                        "wait",
                        {"type": "number", "minimum": 0, "maximum": 60},
                        "Long-poll: answer at once on a status change, else after N s.",
                    ),
                    header("Prefer", "`wait=N`, the same as ?wait=N."),
                    header("If-None-Match", "An ETag from an earlier answer: 304 if unchanged."),
                ],
                "responses": {
                    "200": ok(TaskEnvelope, "The task", TASK_EXAMPLES, POLL_HEADERS),
                    "304": {"description": "Unchanged since the ETag sent"},
                    **fail(
                        (
                            400,
                            "invalid_parameter",
                            "wait must be a number of seconds from 0 to 60",
                            "wait",
                        ),
                        *AUTH_ERRORS,
                        *TASK_ERRORS,
                    ),
                },
            }
        },
        "/v1/video/generations/{task_id}/cancel": {
            "post": {
                "tags": [TAG],
                "summary": "Cancel a queued task",
                "description": "A task waiting in reelgate's queue is cancelled locally, one "
                "queued upstream there; cancelling twice is fine.",
                "operationId": "cancelVideoGeneration",
                "security": BEARER,
                "parameters": [TASK],
                "responses": {
                    "200": ok(
                        TaskEnvelope,
                        "The task, now failure with error.code cancelled",
                        {"cancelled": {"code": "success", "data": CANCELLED}},
                    ),
                    **fail(*AUTH_ERRORS, *TASK_ERRORS, "not_cancellable", "upstream_unavailable"),
                },
            }
        },
        "/v1/video/generations/{task_id}/events": {
            "get": {
                "tags": [TAG],
                "summary": "Stream the task's status changes (server-sent events)",
                "operationId": "streamVideoGeneration",
                "security": BEARER,
                "parameters": [
                    TASK,
                    header("Last-Event-ID", "Resume after this event id (a task version)."),
                ],
                "responses": {
                    "200": {
                        "description": "`event: status` with the same data object as the GET, "
                        "`: keep-alive` comments, until the final status",
                        "content": {
                            "text/event-stream": {
                                "schema": SSE_EVENT,
                                "example": 'id: 3\nevent: status\ndata: {"task_id": '
                                f'"{TASK_ID}", "status": "in_progress", …}}\n\n',
                            }
                        },
                    },
                    **fail(*AUTH_ERRORS, *TASK_ERRORS),
                },
            }
        },
        "/v1/video/generations/{task_id}/content": {
            "get": {
                "tags": [TAG],
                "summary": "The task's file (HTTP Range supported)",
                "operationId": "getVideoGenerationContent",
                "security": BEARER,
                "parameters": [
                    TASK,
                    query("variant", {"enum": ["video", "last_frame"]}, "Which file."),
                    header("Range", "`bytes=START-END`: part of the file (206)."),
                ],
                "responses": {
                    "200": binary("The file", "video/mp4", "image/png"),
                    "206": binary("Part of the file", "video/mp4", "image/png"),
                    "307": {"description": "Not kept here (yet): a redirect to the upstream's URL"},
                    "416": RANGE_NOT_SATISFIABLE,
                    **fail(
                        (
                            400,
                            "invalid_parameter",
                            "variant must be video or last_frame",
                            "variant",
                        ),
                        *AUTH_ERRORS,
                        *TASK_ERRORS,
                        "content_not_ready",
                    ),
                },
            }
        },
    }

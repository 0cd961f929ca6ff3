"""The OpenAPI part for the Ark-native surface: ``/api/v3/contents/generations/tasks`` as the
volcengine SDK speaks it, with the task object ``api/ark_native.py`` renders and Ark's errors."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from reelgate.api.openapi_common import (
    ARK_MODEL,
    AUTH_ERRORS,
    BEARER,
    CREATE_ERRORS,
    FRAME_URL,
    IDEMPOTENCY_KEY,
    OTHER_TASK_ID,
    T0,
    TASK_ERRORS,
    TASK_ID,
    VIDEO_URL,
    ark_fail,
    body,
    header,
    ok,
    path,
    query,
)

TAG = "ark"
TASKS = "/api/v3/contents/generations/tasks"
ARK_STATUS = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]


class ImageUrl(BaseModel):
    url: str = Field(description="An http(s) URL or a data: URI.")


class ContentItem(BaseModel):
    type: Literal["text", "image_url"]
    text: str | None = Field(None, description="With type text: the prompt (legacy --flags too).")
    image_url: ImageUrl | None = None
    role: Literal["first_frame", "last_frame", "reference_image"] | None = Field(
        None, description="With type image_url (default first_frame)."
    )


class ArkCreateRequest(BaseModel):
    """Ark's create body; an unknown field is a 400, and every option is checked against the
    model (GET /v1/models lists them). `callback_url` is refused: set a reelgate webhook."""

    model_config = ConfigDict(extra="forbid")

    model: str
    content: list[ContentItem] = Field(min_length=1)
    tools: list[dict[str, str]] | None = Field(None, description='`[{"type": "web_search"}]`')
    callback_url: None = Field(None, description="Refused on this surface (400).")
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    frames: int | None = None
    seed: int | None = None
    camera_fixed: bool | None = None
    watermark: bool | None = None
    return_last_frame: bool | None = None
    service_tier: Literal["default", "flex"] | None = None
    execution_expires_after: int | None = None
    generate_audio: bool | None = None
    draft: bool | None = None
    priority: int | None = None
    safety_identifier: str | None = None
    output_format: Literal["mp4", "mov"] | None = None


class ArkCreated(BaseModel):
    id: str = Field(description="A reelgate task id (the same task on every surface).")


class ArkTaskError(BaseModel):
    code: str
    message: str


class ArkTaskContent(BaseModel):
    video_url: str = Field(description="reelgate's link (its durable copy once stored).")
    last_frame_url: str | None = Field(None, description="When the model returned one.")


class ArkUsage(BaseModel):
    completion_tokens: int
    total_tokens: int


class ArkTask(BaseModel):
    id: str
    model: str
    status: ARK_STATUS
    error: ArkTaskError | None
    created_at: int
    updated_at: int
    duration: int | None
    resolution: str | None = Field(None, description="Present when the task set it.")
    ratio: str | None = Field(None, description="Present when the task set it.")
    seed: int | None = Field(None, description="Present when the task set it.")
    service_tier: str | None = Field(None, description="Present when the task set it.")
    execution_expires_after: int | None = Field(None, description="Present when set.")
    content: ArkTaskContent | None = Field(None, description="On success only.")
    usage: ArkUsage | None = Field(None, description="On success, when the upstream counted.")


class ArkTaskList(BaseModel):
    items: list[ArkTask]
    total: int = Field(description="How many tasks match the filters.")


class ArkDeleted(BaseModel):
    """An empty object, as Ark answers."""


MODELS: tuple[type[BaseModel], ...] = (
    ArkCreateRequest,
    ArkCreated,
    ArkTask,
    ArkTaskList,
    ArkDeleted,
)

QUEUED = {
    "id": TASK_ID,
    "model": ARK_MODEL,
    "status": "queued",
    "error": None,
    "created_at": T0,
    "updated_at": T0,
    "duration": 5,
    "resolution": "720p",
    "ratio": "16:9",
}
SUCCEEDED = {
    **QUEUED,
    "status": "succeeded",
    "updated_at": T0 + 52,
    "content": {"video_url": VIDEO_URL, "last_frame_url": FRAME_URL},
    "usage": {"completion_tokens": 108900, "total_tokens": 108900},
}
FAILED = {
    "id": OTHER_TASK_ID,
    "model": ARK_MODEL,
    "status": "failed",
    "error": {
        "code": "content_moderation",
        "message": "The request failed because the output video may contain sensitive information.",
    },
    "created_at": T0,
    "updated_at": T0 + 40,
    "duration": 5,
}
TASK = path("task_id", "A task id from the create answer.", TASK_ID)


def paths() -> dict[str, Any]:
    return {
        TASKS: {
            "post": {
                "tags": [TAG],
                "summary": "Create a task (Ark's body, through reelgate's queue and tracking)",
                "operationId": "arkCreateTask",
                "security": BEARER,
                "parameters": [
                    header(
                        "X-Client-Request-Id",
                        "Honoured as an idempotency key: " + IDEMPOTENCY_KEY,
                    )
                ],
                "requestBody": body(
                    ArkCreateRequest,
                    {
                        "text": {
                            "model": ARK_MODEL,
                            "content": [{"type": "text", "text": "a paper boat --rs 720p"}],
                            "ratio": "16:9",
                            "duration": 5,
                        },
                        "first and last frame": {
                            "model": ARK_MODEL,
                            "content": [
                                {"type": "text", "text": "the boat sails away"},
                                {
                                    "type": "image_url",
                                    "image_url": {"url": "https://images.example.com/a.png"},
                                    "role": "first_frame",
                                },
                                {
                                    "type": "image_url",
                                    "image_url": {"url": "https://images.example.com/b.png"},
                                    "role": "last_frame",
                                },
                            ],
                            "seed": 42,
                        },
                    },
                ),
                "responses": {
                    "200": ok(ArkCreated, "The task was accepted", {"created": {"id": TASK_ID}}),
                    **ark_fail(
                        (400, "missing_parameter", "'content' is required", "content"),
                        (
                            400,
                            "unsupported_parameter",
                            "callback_url is not relayed on this surface; set a reelgate webhook "
                            "(PUT /v1/webhook) or use POST /v1/video/generations with callback_url",
                            "callback_url",
                        ),
                        *(e for e in CREATE_ERRORS if e not in ("missing_prompt", "unknown_field")),
                        (
                            400,
                            "invalid_parameter",
                            "X-Client-Request-Id must be 1 to 255 printable ASCII characters",
                            "X-Client-Request-Id",
                        ),
                    ),
                },
            },
            "get": {
                "tags": [TAG],
                "summary": "List the token's tasks (Ark's paging and filters)",
                "operationId": "arkListTasks",
                "security": BEARER,
                "parameters": [
                    query(
                        "page_num",
                        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
                        "Page number.",
                    ),
                    query(
                        "page_size",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 10},
                        "Page size.",
                    ),
                    query(
                        "filter.status", {"enum": list(get_args(ARK_STATUS))}, "Only this status."
                    ),
                    {
                        **query(
                            "filter.task_ids",
                            {"type": "array", "items": {"type": "string"}},
                            "Only these tasks (repeat the parameter); unknown ids are left out.",
                        ),
                        "explode": True,
                    },
                    query("filter.model", {"type": "string"}, "Only this model."),
                    query("filter.service_tier", {"enum": ["default", "flex"]}, "Only this tier."),
                ],
                "responses": {
                    "200": ok(
                        ArkTaskList,
                        "A page of tasks, newest first",
                        {"page": {"items": [SUCCEEDED, FAILED], "total": 2}},
                    ),
                    **ark_fail(
                        (
                            400,
                            "invalid_parameter",
                            "page_size must be an integer from 1 to 500",
                            "page_size",
                        ),
                        *AUTH_ERRORS,
                    ),
                },
            },
        },
        TASKS + "/{task_id}": {
            "get": {
                "tags": [TAG],
                "summary": "Get a task",
                "operationId": "arkGetTask",
                "security": BEARER,
                "parameters": [TASK],
                "responses": {
                    "200": ok(
                        ArkTask,
                        "The task",
                        {"queued": QUEUED, "succeeded": SUCCEEDED, "failed": FAILED},
                    ),
                    **ark_fail(*AUTH_ERRORS, *TASK_ERRORS),
                },
            },
            "delete": {
                "tags": [TAG],
                "summary": "Delete a task (a queued one is cancelled first)",
                "operationId": "arkDeleteTask",
                "security": BEARER,
                "parameters": [TASK],
                "responses": {
                    "200": ok(ArkDeleted, "Deleted", {"deleted": {}}),
                    **ark_fail(
                        *AUTH_ERRORS, *TASK_ERRORS, "not_cancellable", "upstream_unavailable"
                    ),
                },
            },
        },
    }

"""The OpenAPI part for the OpenAI-style surface: ``/v1/videos`` as the official ``openai`` SDK
speaks it, with the Video object ``api/openai.py`` renders and OpenAI's error body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reelgate.api.openapi_common import (
    ARK_MODEL,
    AUTH_ERRORS,
    BEARER,
    CANONICAL_INPUT,
    CREATE_ERRORS,
    IDEMPOTENCY_KEY,
    LIMIT,
    OTHER_TASK_ID,
    RANGE_NOT_SATISFIABLE,
    T0,
    TASK_ERRORS,
    TASK_ID,
    binary,
    body,
    header,
    ok,
    openai_fail,
    path,
    query,
)

TAG = "openai"
VIDEO = path("video_id", "A task id (the same task on every surface).", TASK_ID)


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    id: str
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(description="0-100, estimated from the model's past tasks.")
    created_at: int
    completed_at: int | None
    expires_at: None = Field(description="Always null: reelgate keeps its copies (see README).")
    prompt: str
    seconds: str
    size: str
    remixed_from_video_id: str | None
    error: VideoError | None


class VideoList(BaseModel):
    object: Literal["list"]
    data: list[Video]
    has_more: bool
    first_id: str | None
    last_id: str | None = Field(description="Pass as `after` for the next page.")


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"]
    deleted: bool


class VideoCreateRequest(BaseModel):
    model: str | None = Field(None, description="Default: REELGATE_OPENAI_DEFAULT_MODEL.")
    prompt: str = Field(min_length=1, max_length=4000)
    seconds: str | None = Field(None, description="Seconds, as a string.")
    size: str | None = Field(None, pattern=r"^\d{2,5}x\d{2,5}$")
    input_reference: str | dict[str, str] | None = Field(
        None,
        description='The first frame: a file part, an image URL, or `{"image_url": …}` '
        "(`input_reference[image_url]` in a form). File ids are refused.",
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Provider options (`metadata[key]` in a form, as extra_body sends)."
    )


class RemixRequest(BaseModel):
    prompt: str = Field(min_length=1)


MODELS: tuple[type[BaseModel], ...] = (
    Video,
    VideoList,
    VideoDeleted,
    VideoCreateRequest,
    RemixRequest,
)


def video(status: str, **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": TASK_ID,
        "object": "video",
        "model": "sandbox-t2v",
        "status": status,
        "progress": {"queued": 0, "in_progress": 38}.get(status, 100),
        "created_at": T0,
        "completed_at": T0 + 4 if status in ("completed", "failed") else None,
        "expires_at": None,
        "prompt": "a paper boat on a rainy street",
        "seconds": "4",
        "size": "640x360",
        "remixed_from_video_id": None,
        "error": None,
    }
    if status == "failed":
        out["error"] = {
            "code": "sandbox_failure",
            "message": "task failed: the sandbox was asked to fail it",
        }
    return {**out, **changes}


POLL = {
    "ETag": "Weak; send it back as If-None-Match to get 304 while nothing changed.",
    "openai-poll-after-ms": "Unfinished videos: when to look again (ms); the SDK honours it.",
}


def paths() -> dict[str, Any]:
    video_ok = {"queued": video("queued")}
    return {
        "/v1/videos": {
            "post": {
                "tags": [TAG],
                "summary": "Create a video (OpenAI-style; multipart or JSON)",
                "description": CANONICAL_INPUT + " The SDK's `edit`, `extend`, "
                "`create_character` and `get_character` (`/v1/videos/edits`, `/extensions`, "
                "`/characters`) answer 400 `unsupported_operation` until a provider can do "
                "them; any other unknown path or method under /v1/videos answers 404 or 405 "
                "in this error shape.",
                "operationId": "createVideo",
                "security": BEARER,
                "parameters": [header("Idempotency-Key", IDEMPOTENCY_KEY)],
                "requestBody": body(
                    VideoCreateRequest,
                    {
                        "sandbox": {
                            "model": "sandbox-t2v",
                            "prompt": "a paper boat on a rainy street",
                            "seconds": "4",
                            "size": "640x360",
                        },
                        "Seedance with an image": {
                            "model": ARK_MODEL,
                            "prompt": "the boat drifts towards the camera",
                            "input_reference": {"image_url": "https://images.example.com/boat.png"},
                            "metadata": {"seed": 42},
                        },
                    },
                    form=True,
                ),
                "responses": {
                    "200": ok(Video, "The video, queued", video_ok, POLL),
                    **openai_fail(*CREATE_ERRORS, "invalid_idempotency_key"),
                },
            },
            "get": {
                "tags": [TAG],
                "summary": "List the token's videos",
                "operationId": "listVideos",
                "security": BEARER,
                "parameters": [
                    query("after", {"type": "string"}, "`last_id` of the page before."),
                    LIMIT,
                    query("order", {"enum": ["asc", "desc"], "default": "desc"}, "By creation."),
                ],
                "responses": {
                    "200": ok(
                        VideoList,
                        "A page of videos",
                        {
                            "page": {
                                "object": "list",
                                "data": [video("completed"), video("failed", id=OTHER_TASK_ID)],
                                "has_more": True,
                                "first_id": TASK_ID,
                                "last_id": OTHER_TASK_ID,
                            }
                        },
                    ),
                    **openai_fail(
                        "invalid_limit",
                        (400, "invalid_parameter", "order must be asc or desc", "order"),
                        *AUTH_ERRORS,
                    ),
                },
            },
        },
        "/v1/videos/{video_id}": {
            "get": {
                "tags": [TAG],
                "summary": "Retrieve a video",
                "operationId": "retrieveVideo",
                "security": BEARER,
                "parameters": [
                    VIDEO,
                    header("If-None-Match", "An ETag from an earlier answer: 304 if unchanged."),
                ],
                "responses": {
                    "200": ok(
                        Video,
                        "The video",
                        {
                            "in progress": video("in_progress"),
                            "completed": video("completed"),
                            "failed": video("failed"),
                        },
                        POLL,
                    ),
                    "304": {"description": "Unchanged since the ETag sent"},
                    **openai_fail(*AUTH_ERRORS, *TASK_ERRORS),
                },
            },
            "delete": {
                "tags": [TAG],
                "summary": "Delete a video (a waiting one is cancelled first)",
                "description": "Then it is gone for its owner on every surface.",
                "operationId": "deleteVideo",
                "security": BEARER,
                "parameters": [VIDEO],
                "responses": {
                    "200": ok(
                        VideoDeleted,
                        "Deleted",
                        {"deleted": {"id": TASK_ID, "object": "video.deleted", "deleted": True}},
                    ),
                    **openai_fail(
                        *AUTH_ERRORS, *TASK_ERRORS, "not_cancellable", "upstream_unavailable"
                    ),
                },
            },
        },
        "/v1/videos/{video_id}/content": {
            "get": {
                "tags": [TAG],
                "summary": "Download the video, a WEBP thumbnail or a JPEG spritesheet",
                "operationId": "downloadVideoContent",
                "security": BEARER,
                "parameters": [
                    VIDEO,
                    query(
                        "variant",
                        {"enum": ["video", "thumbnail", "spritesheet"], "default": "video"},
                        "Which file.",
                    ),
                ],
                "responses": {
                    "200": binary("The file", "video/mp4", "image/webp", "image/jpeg"),
                    "206": binary("Part of the video (Range)", "video/mp4"),
                    "307": {"description": "Not kept here (yet): the upstream's video URL"},
                    "416": RANGE_NOT_SATISFIABLE,
                    **openai_fail(
                        (
                            400,
                            "invalid_parameter",
                            "variant must be video, thumbnail or spritesheet",
                            "variant",
                        ),
                        *AUTH_ERRORS,
                        *TASK_ERRORS,
                        (
                            409,
                            "content_not_ready",
                            "the video is in_progress: it has no content yet",
                            None,
                        ),
                    ),
                },
            }
        },
        "/v1/videos/{video_id}/remix": {
            "post": {
                "tags": [TAG],
                "summary": "Remake a completed video with another prompt (where the model can)",
                "description": "The prompt is checked exactly as a create's (canonical text, at "
                "most 4000 characters); the body takes nothing else.",
                "operationId": "remixVideo",
                "security": BEARER,
                "parameters": [VIDEO, header("Idempotency-Key", IDEMPOTENCY_KEY)],
                "requestBody": body(RemixRequest, {"remix": {"prompt": "the same boat at night"}}),
                "responses": {
                    "200": ok(
                        Video,
                        "The new video, queued",
                        {
                            "queued": video(
                                "queued",
                                id=OTHER_TASK_ID,
                                prompt="the same boat at night",
                                remixed_from_video_id=TASK_ID,
                            )
                        },
                        POLL,
                    ),
                    **openai_fail(
                        (400, "missing_parameter", "'prompt' is required", "prompt"),
                        "not_canonical",
                        (
                            400,
                            "unsupported_parameter",
                            "unknown parameter 'seconds'; a remix takes only 'prompt'",
                            "seconds",
                        ),
                        "invalid_idempotency_key",
                        (
                            400,
                            "unsupported_parameter",
                            f"model '{ARK_MODEL}' cannot remix a video; create a new one instead",
                            "model",
                        ),
                        *AUTH_ERRORS,
                        *TASK_ERRORS,
                        (409, "not_remixable", "only a completed video can be remixed", None),
                    ),
                },
            }
        },
    }

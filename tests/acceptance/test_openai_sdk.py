"""The official ``openai`` SDK against reelgate's ``/v1/videos``: with the sandbox and with the
Ark simulator upstream, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from reelgate.render import probe_video
from tests.conftest import LiveServer, ark_gateway

# The SDK deprecates its own Sora methods; the /v1/videos shape they speak is what we serve.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")

KEY = "ark-openai-key"
SEEDANCE = "doubao-seedance-1-0-pro-250528"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with ark_gateway(tmp_path_factory.mktemp("openai"), KEY, running=0.4) as (server, _):
        yield server


@pytest.fixture
def c(gateway: LiveServer) -> Iterator[OpenAI]:
    with client(gateway) as opened:
        yield opened


def client(server: LiveServer, token: str | None = None) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=token or server.token, max_retries=0)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("sandbox-t2v", {"seconds": "2", "size": "640x360"}),
        (SEEDANCE, {"seconds": "5", "size": "1280x720"}),
    ],
)
def test_create_and_poll_then_download(
    c: OpenAI, tmp_path: Path, model: str, extra: dict[str, Any]
) -> None:
    video = c.videos.create_and_poll(
        model=model,  # type: ignore[arg-type]
        prompt="a lighthouse in the fog",
        poll_interval_ms=100,
        **extra,
    )
    assert video.status == "completed", video
    assert video.progress == 100
    assert (video.seconds, video.size) == (extra["seconds"], extra["size"])
    assert video.completed_at is not None
    content = c.videos.download_content(video.id)
    (tmp_path / "v.mp4").write_bytes(content.read())
    assert probe_video(tmp_path / "v.mp4").frames > 0
    if model == "sandbox-t2v":
        thumb = c.videos.download_content(video.id, variant="thumbnail").read()
        assert thumb[:4] == b"RIFF"
        assert thumb[8:12] == b"WEBP"
        sheet = c.videos.download_content(video.id, variant="spritesheet").read()
        assert sheet[:3] == b"\xff\xd8\xff"  # JPEG


def test_retrieve_list_delete_and_errors(gateway: LiveServer, c: OpenAI) -> None:
    made = [
        c.videos.create(
            model="sandbox-t2v",  # type: ignore[arg-type]
            prompt=f"list me {i}",
            seconds="1",
            size="160x120",  # type: ignore[arg-type]
            extra_body={"metadata": {"queue_seconds": 60}},
        )
        for i in range(5)
    ]
    assert {v.status for v in made} == {"queued"}
    assert c.videos.retrieve(made[0].id).id == made[0].id
    # The SDK's auto-paging walks every page; the seed's surface sees the same ids.
    listed = [v.id for v in c.videos.list(limit=2)]
    assert [m.id for m in reversed(made)] == [i for i in listed if i in {m.id for m in made}]
    oldest = [v.id for v in c.videos.list(limit=2, order="asc")]
    assert oldest.index(made[0].id) < oldest.index(made[4].id)
    with gateway.client() as seed:
        assert (
            seed.get(f"/v1/video/generations/{made[1].id}").json()["data"]["task_id"] == made[1].id
        )
    deleted = c.videos.delete(made[0].id)
    assert (deleted.id, deleted.deleted) == (made[0].id, True)
    with pytest.raises(openai.NotFoundError) as err:
        c.videos.retrieve(made[0].id)
    assert err.value.body["code"] == "task_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        c.videos.create(model="no-such-model", prompt="x")  # type: ignore[arg-type]
    assert bad.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError), client(gateway, "rg_wrong") as stranger:
        stranger.videos.list()
    for v in made[1:]:
        c.videos.delete(v.id)


def test_remix_where_the_model_can(c: OpenAI) -> None:
    source = c.videos.create_and_poll(
        model="sandbox-t2v",  # type: ignore[arg-type]
        prompt="a red boat",
        seconds="1",
        size="160x120",  # type: ignore[arg-type]
        poll_interval_ms=100,
    )
    remix = c.videos.remix(source.id, prompt="a blue boat")
    assert remix.remixed_from_video_id == source.id
    assert remix.prompt == "a blue boat"
    assert (remix.seconds, remix.size) == ("1", "160x120")
    seedance = c.videos.create_and_poll(
        model=SEEDANCE,  # type: ignore[arg-type]
        prompt="x",
        seconds="5",
        poll_interval_ms=100,
    )
    with pytest.raises(openai.BadRequestError) as err:
        c.videos.remix(seedance.id, prompt="y")
    assert err.value.body["code"] == "unsupported_parameter"  # type: ignore[index]


def test_an_input_reference_file_starts_the_video(c: OpenAI, tmp_path: Path) -> None:
    import base64

    from tests.integration.test_seed_api import png_data_uri

    image = tmp_path / "first.png"
    image.write_bytes(base64.b64decode(png_data_uri().split(",", 1)[1]))
    with image.open("rb") as f:
        video = c.videos.create(
            model="sandbox-i2v",  # type: ignore[arg-type]
            prompt="from this frame",
            seconds="1",
            size="160x120",  # type: ignore[arg-type]
            input_reference=f,
        )
    done = c.videos.poll(video.id, poll_interval_ms=100)
    assert done.status == "completed", done
    with pytest.raises(openai.BadRequestError) as err:  # i2v without its image
        c.videos.create(model="sandbox-i2v", prompt="no frame")  # type: ignore[arg-type]
    assert err.value.body["code"] == "missing_parameter"  # type: ignore[index]


def test_operations_no_provider_offers_are_a_clear_400(c: OpenAI) -> None:
    """The SDK's edit, extend and character routes: ``unsupported_operation`` in OpenAI's shape
    (not a body-less 404/405 the SDK reports as a broken server)."""
    clip = ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    calls = {
        "edit": lambda: c.videos.edit(prompt="make it night", video=clip),
        "extend": lambda: c.videos.extend(prompt="go on", seconds="4", video=clip),
        "create_character": lambda: c.videos.create_character(name="captain", video=clip),
        "get_character": lambda: c.videos.get_character("char_123"),
    }
    for name, call in calls.items():
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert err.value.code == "unsupported_operation", name
        assert err.value.type == "invalid_request_error", name
        assert "not supported" in err.value.message, name


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/videos/a/b/c", 404, "not_found"),
        ("PUT", "/v1/videos/video_123", 405, "method_not_allowed"),
        ("POST", "/v1/videos/video_123/content", 405, "method_not_allowed"),
        ("GET", "/v1/videos/video_123/remix", 405, "method_not_allowed"),
        ("PATCH", "/v1/videos", 405, "method_not_allowed"),
    ],
)
def test_every_videos_path_answers_openai_s_error_shape(
    c: OpenAI, method: str, path: str, status: int, code: str
) -> None:
    """Unknown sub-paths and wrong methods too: the SDK reads their code and message."""
    send = getattr(c, method.lower())
    with pytest.raises(openai.APIStatusError) as err:
        send(path.removeprefix("/v1"), cast_to=object)
    assert err.value.status_code == status
    assert err.value.code == code
    assert err.value.type == "invalid_request_error"
    body = err.value.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}

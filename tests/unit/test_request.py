from __future__ import annotations

from typing import Any

import pytest

from reelgate.core.errors import InvalidRequest
from reelgate.core.request import parse_seed_body


def ok(**body: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": "a cat", **body}


def test_minimal_body() -> None:
    req = parse_seed_body(ok())
    assert (req.model, req.prompt, req.images, req.duration, req.size) == (
        "m",
        "a cat",
        (),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"prompt": "x"}, "missing_parameter", "model"),
        ({"model": "m"}, "missing_parameter", "prompt"),
        (ok(prompt="   "), "invalid_parameter", "prompt"),
        (ok(prompt=5), "invalid_parameter", "prompt"),
        (ok(prompt="x" * 4001), "invalid_parameter", "prompt"),
        (ok(prompt="nul\x00byte"), "invalid_parameter", "prompt"),
        (ok(size="big"), "invalid_parameter", "size"),
        (ok(size="1280x"), "invalid_parameter", "size"),
        (ok(duration="five"), "invalid_parameter", "duration"),
        (ok(duration=True), "invalid_parameter", "duration"),
        (ok(duration=5.5), "invalid_parameter", "duration"),
        (ok(duration=5, seconds="6"), "invalid_parameter", "seconds"),
        (ok(metadata="{not json"), "invalid_parameter", "metadata"),
        (ok(metadata=[1]), "invalid_parameter", "metadata"),
        (ok(images="ftp://x"), "invalid_parameter", "image"),
        (ok(images=[1]), "invalid_parameter", "images"),
        (ok(image=7), "invalid_parameter", "image"),
        (ok(resolution="720p"), "unsupported_parameter", "resolution"),
    ],
)
def test_bad_bodies_name_the_parameter(body: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_seed_body(body)
    assert info.value.code == code
    assert info.value.param == param
    assert info.value.http_status == 400


def test_duration_and_seconds_forms() -> None:
    assert parse_seed_body(ok(duration=5)).duration == 5
    assert parse_seed_body(ok(duration="5")).duration == 5
    assert parse_seed_body(ok(seconds="8")).duration == 8
    assert parse_seed_body(ok(duration=4, seconds="4")).duration == 4


def test_size_forms() -> None:
    assert parse_seed_body(ok(size="1280x720")).size == (1280, 720)
    assert parse_seed_body(ok(size="720X1280")).size == (720, 1280)
    assert parse_seed_body(ok(size="640\u00d7360")).size == (640, 360)


def test_images_are_collected_in_order() -> None:
    req = parse_seed_body(ok(image="https://a/1.png", images=["data:image/png;base64,AA=="]))
    assert req.images == ("https://a/1.png", "data:image/png;base64,AA==")
    assert parse_seed_body(ok(input_reference="https://a/2.png")).images == ("https://a/2.png",)


def test_metadata_as_object_or_json_string() -> None:
    assert parse_seed_body(ok(metadata={"seed": 1})).metadata == {"seed": 1}
    assert parse_seed_body(ok(metadata='{"seed": 2}')).metadata == {"seed": 2}

from __future__ import annotations

from typing import Any

import pytest

from reelgate.core.capabilities import NormalizedRequest, normalize
from reelgate.core.errors import InvalidRequest
from reelgate.core.request import VideoRequest
from reelgate.providers.sandbox.provider import MODELS

T2V, I2V = MODELS
IMG = "data:image/png;base64,AAAA"


def req(**kw: Any) -> VideoRequest:
    return VideoRequest(model="sandbox-t2v", prompt="a cat", **kw)


def test_defaults_are_applied() -> None:
    n = normalize(req(), T2V)
    assert (n.duration, n.width, n.height, n.options) == (3, 640, 360, {})


def test_values_are_kept_and_round_trip() -> None:
    n = normalize(req(duration=5, size=(320, 240), metadata={"run_seconds": 1}), T2V)
    assert (n.duration, n.width, n.height) == (5, 320, 240)
    assert n.options == {"run_seconds": 1.0}
    assert NormalizedRequest.from_json(n.to_json()) == n


@pytest.mark.parametrize(
    ("kw", "caps", "code", "param"),
    [
        ({"images": (IMG,)}, T2V, "unsupported_parameter", "image"),
        ({}, I2V, "missing_parameter", "image"),
        ({"images": (IMG, IMG)}, I2V, "invalid_parameter", "images"),
        ({"duration": 0}, T2V, "invalid_parameter", "duration"),
        ({"duration": 11}, T2V, "invalid_parameter", "duration"),
        ({"size": (641, 360)}, T2V, "invalid_parameter", "size"),
        ({"size": (32, 32)}, T2V, "invalid_parameter", "size"),
        ({"size": (1920, 1080)}, T2V, "invalid_parameter", "size"),
        ({"metadata": {"resolution": "720p"}}, T2V, "unsupported_parameter", "metadata.resolution"),
        ({"metadata": {"fail": "yes"}}, T2V, "invalid_parameter", "metadata.fail"),
        ({"metadata": {"fps": 2.5}}, T2V, "invalid_parameter", "metadata.fps"),
        ({"metadata": {"fps": 100}}, T2V, "invalid_parameter", "metadata.fps"),
        ({"metadata": {"run_seconds": -1}}, T2V, "invalid_parameter", "metadata.run_seconds"),
    ],
)
def test_what_the_model_cannot_do_is_refused(
    kw: dict[str, Any], caps: Any, code: str, param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize(req(**kw), caps)
    assert (info.value.code, info.value.param) == (code, param)


def test_unsupported_option_message_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize(req(metadata={"resolution": "720p"}), T2V)
    assert "resolution" in info.value.message
    assert "run_seconds" in info.value.message


def test_describe_is_json_ready() -> None:
    d = T2V.describe()
    assert d["id"] == "sandbox-t2v"
    assert d["modes"] == ["t2v"]
    assert d["options"]["fps"] == {
        "type": "int",
        "description": "frames per second of the output",
        "minimum": 8,
        "maximum": 30,
    }

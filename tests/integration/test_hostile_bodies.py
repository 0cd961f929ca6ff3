"""Hostile bodies against a live gateway: every class of non-canonical value, sent to every
surface that creates (seed, OpenAI, Ark, quote) and to remix, answers a 4xx in that surface's
shape with a stable code, stores nothing, sends nothing upstream, and leaves the worker alive."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ark_gateway

KEY = "ark-hostile-key"
PRO = "doubao-seedance-1-0-pro-250528"
HUGE = "9" * 5000  # more digits than int() reads by default
STABLE = {"invalid_parameter", "invalid_json", "missing_parameter", "unsupported_parameter"}

# name -> (fields of a seed create body, the parameter the seed's surface names)
CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "lone surrogate in the prompt": ({"prompt": "a cat \udfff"}, "prompt"),
    "NUL in the prompt": ({"prompt": "a\x00cat"}, "prompt"),
    "escape sequence in the prompt": ({"prompt": "a \x1b[31mred\x1b[0m cat"}, "prompt"),
    "an over-long prompt": ({"prompt": "x" * 4001}, "prompt"),
    "lone surrogate in the model": ({"model": "sandbox-t2v\ud800"}, "model"),
    "duration --5": ({"duration": "--5"}, "duration"),
    "duration of 5000 digits": ({"duration": "__HUGE__"}, None),
    "duration Infinity": ({"duration": float("inf")}, "duration"),
    "NaN in metadata": ({"metadata": {"seed": float("nan")}}, "metadata.seed"),
    "an integer too big for any column": ({"metadata": {"seed": 10**30}}, "metadata.seed"),
    "an image URL with an impossible port": ({"image": "http://example.com:99999/a.png"}, "image"),
    "an image URL with a 64-character label": (
        {"image": "http://" + "a" * 64 + ".example/a.png"},
        "image",
    ),
    "an image URL that does not parse": ({"image": "http://[::1/a.png"}, "image"),
    "a list field sent as an object": ({"images": {"a": 1}}, "images"),
    "a surrogate as a field name": ({"\udfff": 1}, "\\udfff"),
    "a callback URL with an impossible port": (
        {"callback_url": "http://example.com:0/hook"},
        "callback_url",
    ),
}


def ark_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The same hostile value in Ark's create body."""
    body: dict[str, Any] = {
        "model": fields.get("model", PRO),
        "content": [{"type": "text", "text": fields.get("prompt", "a cat")}],
    }
    for key, value in fields.items():
        if key == "image":
            body["content"].append({"type": "image_url", "image_url": {"url": value}})
        elif key == "images":
            body["content"] = value
        elif key == "metadata":
            body.update(value)
        elif key == "callback_url":
            body["content"].append({"type": "image_url", "image_url": {"url": value}})
        elif key not in ("model", "prompt"):
            body[key] = value
    return body


def seed_shape(answer: httpx.Response) -> tuple[str, str | None]:
    body = answer.json()
    assert set(body) <= {"code", "message", "data", "param"}
    assert body["data"] is None
    return body["code"], body.get("param")


def nested_shape(answer: httpx.Response) -> tuple[str, str | None]:
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]["code"], body["error"]["param"]


Surface = tuple[str, Callable[[dict[str, Any]], dict[str, Any]], Callable[..., Any]]
SURFACES: dict[str, Surface] = {
    "seed": ("/v1/video/generations", lambda f: f, seed_shape),
    "quote": ("/v1/video/generations/quote", lambda f: f, seed_shape),
    "openai": ("/v1/videos", lambda f: f, nested_shape),
    "ark": ("/api/v3/contents/generations/tasks", ark_body, nested_shape),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any]]:
    with ark_gateway(tmp_path_factory.mktemp("hostile"), KEY, running=0.2) as both:
        yield both


def stored(server: LiveServer) -> tuple[int, int]:
    """Tasks and idempotency keys in the gateway's database."""
    with sqlite3.connect(server.workdir / "reelgate.db") as db:
        tasks = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
        keys = db.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0]
    return int(tasks), int(keys)


def send(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    # json.dumps writes lone surrogates and NUL as \u escapes and NaN as NaN: what a hostile
    # client sends. A 5000-digit number cannot even be written by json.dumps: spliced in.
    raw = json.dumps(body).replace('"__HUGE__"', HUGE).encode()
    with server.client() as c:
        return c.post(path, content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_body_is_a_400_that_stores_nothing(
    gateway: tuple[LiveServer, Any], surface: str, case: str
) -> None:
    server, sim = gateway
    path, translate, shape = SURFACES[surface]
    fields, param = CASES[case]
    body = translate({"model": "sandbox-t2v", "prompt": "a cat", **fields})
    if surface == "ark" and "model" not in fields:
        body["model"] = PRO
    before, upstream = stored(server), len(sim.tasks)
    answer = send(server, path, body)
    assert answer.status_code == 400, answer.text
    code, named = shape(answer)
    assert code in STABLE, answer.text
    if surface in ("seed", "quote", "openai") and param is not None:
        assert named == param, answer.text
    assert stored(server) == before
    assert len(sim.tasks) == upstream


def test_the_surrogate_prompt_that_stopped_the_worker_is_refused_and_work_goes_on(
    gateway: tuple[LiveServer, Any],
) -> None:
    server, sim = gateway
    path = SURFACES["ark"][0]
    refused = send(server, path, ark_body({"prompt": "a fox \udfff in the snow"}))
    assert refused.status_code == 400
    assert nested_shape(refused) == ("invalid_parameter", "content[0].text")
    with server.client() as c:
        made = c.post(path, json=ark_body({"prompt": "a fox in the snow"}))
        assert made.status_code == 200, made.text
        task_id = made.json()["id"]
    assert server.wait_terminal(task_id)["status"] == "success"  # the worker is alive
    assert [t.body["content"][0]["text"] for t in sim.tasks.values()][-1] == "a fox in the snow"


def test_a_remix_takes_only_a_prompt_a_create_would_take(gateway: tuple[LiveServer, Any]) -> None:
    server, _ = gateway
    with server.client() as c:
        first = {"model": "sandbox-t2v", "prompt": "a red boat", "seconds": "1", "size": "160x120"}
        made = c.post("/v1/videos", json=first)
        source = made.json()["id"]
    assert server.wait_terminal(source)["status"] == "success"
    before = stored(server)
    hostile = {
        "ten megabytes": {"prompt": "boat " * 2_000_000},
        "control characters": {"prompt": "a \x07blue\x00 boat"},
        "a lone surrogate": {"prompt": "a blue boat \udc00"},
        "blank": {"prompt": "  \n "},
        "no prompt": {},
        "an unknown field": {"prompt": "a blue boat", "seconds": "9"},
    }
    for name, body in hostile.items():
        answer = send(server, f"/v1/videos/{source}/remix", body)
        assert answer.status_code == 400, name
        code, _ = nested_shape(answer)
        assert code in STABLE, name
    assert stored(server) == before
    with server.client() as c:
        fine = c.post(f"/v1/videos/{source}/remix", json={"prompt": "a blue boat\r\nat dusk"})
    assert fine.status_code == 200, fine.text
    assert fine.json()["prompt"] == "a blue boat\nat dusk"


def test_a_huge_nested_body_is_refused_before_it_is_built(gateway: tuple[LiveServer, Any]) -> None:
    server, _ = gateway
    nested = b"[" + b"[[]]," * 6_000_000 + b"[]]"  # 30 MB of small arrays
    with server.client() as c:
        answer = c.post(
            "/v1/video/generations", content=nested, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400
        assert seed_shape(answer)[0] == "invalid_json"
        assert "values" in answer.json()["message"]
        assert c.get("/healthz").status_code == 200


def test_every_model_lists_a_real_default_size_and_what_it_accepts(
    gateway: tuple[LiveServer, Any],
) -> None:
    server, _ = gateway
    with server.client() as c:
        models = c.get("/v1/models").json()["data"]
        assert {m["provider"] for m in models} == {"sandbox", "ark"}
        for model in models:
            size = model["size"]
            width, height = (int(x) for x in size["default"].split("x"))
            assert width > 0, model["id"]
            assert height > 0, model["id"]
            assert size["min_side"] <= min(width, height) <= max(width, height) <= size["max_side"]
            assert width * height <= size["max_pixels"]
            if model["provider"] == "ark":
                assert size["default"] in size["allowed"]
                assert set(size["allowed"]) == {
                    s for by_ratio in model["resolutions"].values() for s in by_ratio.values()
                }
            else:
                assert size["allowed"] is None
            if "t2v" in model["modes"]:  # the default is a size a create accepts
                quote = c.post(
                    "/v1/video/generations/quote",
                    json={"model": model["id"], "prompt": "x", "size": size["default"]},
                )
                assert quote.status_code == 200, (model["id"], quote.text)

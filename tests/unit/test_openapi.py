"""The OpenAPI document lists every client-facing route the app serves (it cannot drift), is valid
OpenAPI 3.1 (and 3.0 as /docs gets it), and every example it shows fits its own schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate
from starlette.routing import BaseRoute, Mount, Route

from reelgate.api import ark_native
from reelgate.api.app import create_app
from reelgate.api.openapi import build_document, swagger_document
from reelgate.core import request
from reelgate.settings import Settings

# Routes that are not part of the client API document.
INTERNAL = {
    "/v1/media/{root}/{name}",  # signed links, handed out in answers
    "/v1/callbacks/{provider}/{task_id}/{token}",  # upstreams call these
    "/openapi.json",
    "/docs",
    "/docs/init.js",
}
# Mounted trees that are pages and files, not API: Swagger UI's assets and the web console.
INTERNAL_MOUNTS = {"/docs/assets", "/console"}
METHODS = {"get", "put", "post", "delete", "patch"}
DOCUMENT = build_document()


def closed(node: Any) -> Any:
    """A schema as the tests hold answers to it: an object lists every field it may carry (the
    document leaves objects open, so clients tolerate fields added later)."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A strict JSON Schema validator for one schema of ``document`` (its $refs resolve)."""
    root = {**closed(schema), "components": {"schemas": closed(document["components"]["schemas"])}}
    return Draft202012Validator(root)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation
    for name, item in document.get("webhooks", {}).items():
        for method, operation in item.items():
            yield f"webhook {name}", method, operation


def media(operation: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, media type, media object) of a request body and every response."""
    for kind, found in operation.get("requestBody", {}).get("content", {}).items():
        yield "request", kind, found
    for status, response in operation["responses"].items():
        for kind, found in response.get("content", {}).items():
            yield status, kind, found


def served_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            if prefix + route.path not in INTERNAL_MOUNTS:
                yield from served_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and prefix + route.path not in INTERNAL:
            yield prefix + route.path, {m.lower() for m in route.methods or () if m != "HEAD"}


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path))
    served: dict[str, set[str]] = {}
    for path, methods in served_routes(app.routes):
        served.setdefault(path, set()).update(methods)
    documented = {path: set(ops) for path, ops in DOCUMENT["paths"].items()}
    assert served == documented


def test_the_document_is_openapi_3_1_and_docs_get_it_as_3_0() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)
    rendition = swagger_document(DOCUMENT)
    assert rendition["openapi"] == "3.0.3"
    validate(rendition, cls=OpenAPIV30SpecValidator)
    assert set(rendition["paths"]) == set(DOCUMENT["paths"])


def test_operations_are_tagged_secured_and_named_once() -> None:
    ids = [op["operationId"] for _, _, op in operations(DOCUMENT)]
    assert len(ids) == len(set(ids))
    tags = {t["name"] for t in DOCUMENT["tags"]}
    for path, method, op in operations(DOCUMENT):
        assert op["tags"], (path, method)
        assert set(op["tags"]) <= tags, (path, method)
        assert op.get("summary"), (path, method)
        if path.startswith("/v1/admin/"):
            assert op["security"] == [{"adminBearer": []}], (path, method)
        elif path.startswith(("/v1/", "/api/v3/")):
            assert op["security"] == [{"bearer": []}], (path, method)
        elif not path.startswith("webhook"):
            assert op["security"] == [], (path, method)


def test_every_json_body_has_examples() -> None:
    """Every request body and every response with a JSON body (2xx and errors) shows examples."""
    for path, method, op in operations(DOCUMENT):
        two_xx = [s for s in op["responses"] if s.startswith("2")]
        assert two_xx, (path, method)
        for where, kind, found in media(op):
            if kind == "application/json":
                assert found.get("examples"), (path, method, where)


def test_every_example_fits_its_schema() -> None:
    checked = 0
    for path, method, op in operations(DOCUMENT):
        for where, kind, found in media(op):
            if "schema" not in found or kind != "application/json":
                continue
            check = validator(DOCUMENT, found["schema"])
            for name, example in found.get("examples", {}).items():
                errors = [e.message for e in check.iter_errors(example["value"])]
                assert errors == [], (path, method, where, name)
                checked += 1
    assert checked > 150


def test_error_examples_wear_each_surface_s_shape() -> None:
    shapes = {"/v1/videos": "OpenAiErrorBody", "/api/v3/": "ArkErrorBody"}
    for path, item in DOCUMENT["paths"].items():
        wanted = next((s for p, s in shapes.items() if path.startswith(p)), "ErrorBody")
        for method, op in item.items():
            for status, response in op["responses"].items():
                # /readyz's 503 is the readiness report; a 416 has no body (Content-Range says
                # the file's size).
                if status[0] in "45" and path != "/readyz" and status != "416":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{wanted}"}, (path, method)


@pytest.mark.parametrize(
    ("schema", "accepted"),
    [
        ("CreateRequest", request._KNOWN_FIELDS),
        (
            "ArkCreateRequest",
            {"model", "content", "tools", "callback_url", *ark_native._OPTIONS},
        ),
    ],
)
def test_create_bodies_list_what_the_parsers_accept(schema: str, accepted: set[str]) -> None:
    assert set(DOCUMENT["components"]["schemas"][schema]["properties"]) == set(accepted)


def test_each_server_sent_event_fits_the_documented_event_schema() -> None:
    """Found by fuzzing: the stream was documented as one string, so no event could fit; the
    schema describes each event as readers hand it over (OpenAPI 3.2's itemSchema shape)."""
    stream = DOCUMENT["paths"]["/v1/video/generations/{task_id}/events"]["get"]["responses"]
    media_type = stream["200"]["content"]["text/event-stream"]
    event = dict(line.split(": ", 1) for line in media_type["example"].strip().splitlines())
    assert event["event"] == "status"
    check = validator(DOCUMENT, media_type["schema"])
    assert [e.message for e in check.iter_errors(event)] == []
    assert list(check.iter_errors({**event, "event": "message"})) != []


def test_file_routes_document_an_unsatisfiable_range() -> None:
    for path in ("/v1/video/generations/{task_id}/content", "/v1/videos/{video_id}/content"):
        responses = DOCUMENT["paths"][path]["get"]["responses"]
        assert "416" in responses, path
        assert "content" not in responses["416"], path

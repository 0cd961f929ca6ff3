"""The hostile corpus's targets: every route of a live gateway and how to make a request to it
hostile in one place (its ``slot``) while the rest stays valid, so the value reaches the code
behind the first check.

Routes come from the running app's ``/openapi.json`` (path, query and header parameters, the
documented example bodies and the body schema's fields) plus those it does not list: the console,
signed media links, upstream callbacks, the docs, and paths and methods that do not exist. Valid
values (real task ids, delivery ids, token refs, channel names, a signed link, a callback address)
come from the ``Pool`` (``bench/hostile_cases.py``) the runner made on the gateway first.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from bench.hostile_values import (
    WIRE_PROBES,
    body_probes,
    header_probes,
    structure_probes,
)

# Asked of every route, documented or not (issue #16's list).
GENERIC_HEADERS = (
    "Authorization",
    "Idempotency-Key",
    "X-Client-Request-Id",
    "X-Request-Id",
    "If-None-Match",
    "Last-Event-ID",
    "Range",
    "Prefer",
)
GENERIC_QUERY = ("limit", "after", "wait", "expires", "sig")
METHODS = b"PUT PATCH DELETE OPTIONS TRACE PROPFIND CONNECT get M-SEARCH G\xffT".split(b" ")
METHODS.append(b"GET" * 12)
_PARAM = re.compile(r"\{([^}]+)\}")
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    auth: str = "bearer"  # bearer | admin | "" (none)
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    bodies: tuple[Any, ...] = ()  # example JSON bodies (mutated one field at a time)
    fields: tuple[str, ...] = ()  # the body schema's top-level properties
    multipart: bool = False
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.template)

    def body_slots(self) -> dict[str, list[tuple[int, Path]]]:
        """``body.<field path>`` → where it is in each example that has it: every field, nested
        ones too, and the schema's fields the examples leave out."""
        out: dict[str, list[tuple[int, Path]]] = {}
        for index, body in enumerate(self.bodies):
            wheres = dict.fromkeys([*_paths(body), *((name,) for name in self.fields)])
            for where in wheres:
                out.setdefault("body." + _show(where), []).append((index, where))
        return out

    def slots(self) -> list[str]:
        """Every slot, as often as it weighs: a body's prose fields most (where a prompt goes),
        then the other fields and the documented parameters, then what every route is asked."""
        names = [f"path.{p}" for p in self.path_params] * 2
        names += [f"query.{q}" for q in self.query] * 2
        names += [f"query.{q}" for q in GENERIC_QUERY if q not in self.query]
        own = [h.lower() for h in self.headers]
        names += [f"header.{h}" for h in own] * 2
        names += [f"header.{h.lower()}" for h in GENERIC_HEADERS if h.lower() not in own]
        for slot, wheres in self.body_slots().items():
            index, where = wheres[0]
            original = get_at(self.bodies[index], where)
            prose = isinstance(original, str) and " " in original
            names += [slot] * (4 if prose else 2)
        if self.bodies:
            names += ["whole-body", "header.content-type"] * 2
        if self.multipart:
            names += ["multipart"] * 2
        return [*names, "method"]

    def sweep(self, limit: int) -> list[tuple[str, str, Any, int]]:
        """(slot, kind, value, example) for one value of each family in every slot of a kind."""
        out: list[tuple[str, str, Any, int]] = []
        for slot, wheres in self.body_slots().items():
            for n, (index, where) in enumerate(wheres):
                original = get_at(self.bodies[index], where)
                if n and not (isinstance(original, str) and " " in original):
                    continue  # a prompt in every example (each may go upstream), others once
                out += [(slot, kind, value, index) for kind, value in body_probes(original, limit)]
        if self.bodies:
            out += [("whole-body", kind, value, 0) for kind, value in structure_probes(limit)]
        for name in self.path_params:
            out += [(f"path.{name}", kind, value, 0) for kind, value in WIRE_PROBES]
        for name in self.query:
            out += [(f"query.{name}", kind, value, 0) for kind, value in WIRE_PROBES]
        for name in self.headers:
            out += [(f"header.{name.lower()}", k, v, 0) for k, v in header_probes(name)]
        return out


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    out: list[Path] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _show(where: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")


def get_at(value: Any, where: Path) -> Any:
    for step in where:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def put_at(value: Any, where: Path, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = new
    return out


# -- the routes ----------------------------------------------------------------------------------
def documented(document: dict[str, Any]) -> list[Route]:
    """Every operation of an OpenAPI document."""
    schemas = document.get("components", {}).get("schemas", {})
    out = []
    for template, item in document["paths"].items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "patch", "delete", "head"):
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            named = {
                kind: tuple(p["name"] for p in params if p["in"] == kind)
                for kind in ("query", "header")
            }
            enums = {
                p["name"]: tuple(p["schema"]["enum"])
                for p in params
                if "enum" in p.get("schema", {})
            }
            content = op.get("requestBody", {}).get("content", {})
            media = content.get("application/json", {})
            examples = [e["value"] for e in (media.get("examples") or {}).values() if "value" in e]
            ref = media.get("schema", {}).get("$ref", "")
            properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            security = [name for req in op.get("security", []) for name in req]
            out.append(
                Route(
                    method.upper(),
                    template,
                    auth="admin" if "adminBearer" in security else "bearer" if security else "",
                    query=named["query"],
                    headers=named["header"],
                    bodies=tuple(examples) or (({},) if media else ()),
                    fields=tuple(properties),
                    multipart="multipart/form-data" in content,
                    enums=enums,
                )
            )
    return out


CALLBACK_BODY = {"id": "cgt-20250101000000-abcde", "status": "succeeded", "model": "m"}
# What /openapi.json does not list: the console, media links, callbacks, docs, and what does not
# exist (the openai SDK's edits, extensions and characters among it).
UNDOCUMENTED = [
    *(Route("GET", f"/console{p}", auth="") for p in ("/", "/tasks", "/new", "/usage", "/tokens")),
    Route("GET", "/console/channels", auth=""),
    Route("GET", "/console/tasks/{task_id}", auth=""),
    Route("GET", "/console/api/whoami"),
    Route("GET", "/console/api/tasks/{task_id}"),
    Route("GET", "/console/static/{file}", auth=""),
    Route("GET", "/v1/media/{root}/{name}", auth="", query=("expires", "sig"), headers=("Range",)),
    Route("HEAD", "/v1/media/{root}/{name}", auth="", query=("expires", "sig"), headers=("Range",)),
    Route("POST", "/v1/callbacks/{provider}/{task_id}/{token}", auth="", bodies=(CALLBACK_BODY,)),
    Route("GET", "/openapi.json", auth=""),
    Route("GET", "/docs", auth=""),
    Route("GET", "/docs/init.js", auth=""),
    Route("GET", "/docs/assets/{file}", auth=""),
    Route("POST", "/v1/videos/edits", bodies=({"video_id": "x", "prompt": "p"},)),
    Route("POST", "/v1/videos/extensions", bodies=({"video_id": "x", "prompt": "p"},)),
    Route("POST", "/v1/videos/characters", bodies=({"name": "c"},)),
    Route("GET", "/v1/videos/characters/{video_id}"),
    Route("POST", "/v1/videos/{video_id}/extend", bodies=({"prompt": "p"},)),
    Route("GET", "/v1/{unknown}"),
    Route("GET", "/{unknown}", auth=""),
]


def localized(route: Route, image: str, hook: str) -> Route:
    """``route`` with its examples' example.com URLs replaced by ones that answer: an image
    inline, any other address the corpus's own receiver (so validation goes past them)."""

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str) and re.match(r"^https?://[^/]*example\.com/", value):
            return image if value.endswith((".png", ".jpg", ".jpeg")) else hook
        return value

    return dataclasses.replace(route, bodies=tuple(swap(b) for b in route.bodies))


# The creates whose examples gain one per provider with every option (the others share their
# validation: the quote, the Ark surface's own fields are in its examples already).
OPTION_ROUTES = ("POST /v1/video/generations", "POST /v1/videos")


def with_options(route: Route, models: list[dict[str, Any]]) -> Route:
    """``route`` with an example more per provider where its body takes ``metadata``: every
    option the provider's first text-to-video model declares (``GET /v1/models``), at a valid
    value, so that each option meets the sweep's values and the random part's."""
    if route.label not in OPTION_ROUTES or "metadata" not in route.fields:
        return route
    first: dict[str, dict[str, Any]] = {}
    for model in models:
        if model.get("images", {}).get("min", 0) == 0:
            first.setdefault(model["provider"], model)
    extra = tuple(
        {
            "model": model["id"],
            "prompt": "a calm sea at dawn",
            "metadata": {name: _valid(spec) for name, spec in model.get("options", {}).items()},
        }
        for model in first.values()
    )
    return dataclasses.replace(route, bodies=route.bodies + extra)


def _valid(spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if kind == "bool":
        return False
    if kind in ("int", "float"):
        return spec.get("minimum", 1)
    return (spec.get("choices") or ["x"])[0]

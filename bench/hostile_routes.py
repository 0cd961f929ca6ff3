"""The hostile corpus's targets: every route of a live gateway and how to make a request to it
hostile in one place (its ``slot``) while the rest stays valid, so the value reaches the code
behind the first check.

Routes come from the running app's ``/openapi.json`` (path, query and header parameters, the
documented example bodies and the body schema's fields) plus those it does not list: the console,
signed media links, upstream callbacks, the docs, and paths and methods that do not exist. Valid
values (real task ids, delivery ids, token refs, channel names, a signed link, a callback address)
come from the ``Pool`` the runner made on the gateway before the corpus starts.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.hostile_values import (
    WIRE_PROBES,
    Drawn,
    body_probes,
    header_probes,
    header_values,
    json_values,
    query_values,
    segments,
    structure_probes,
    texts,
    to_json,
    whole_bodies,
)
from bench.hostile_wire import Case
from hypothesis import strategies as st

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
BOUNDARY = b"hostile-boundary"
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
            original = _get(self.bodies[index], where)
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
                original = _get(self.bodies[index], where)
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


def _get(value: Any, where: Path) -> Any:
    for step in where:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def _put(value: Any, where: Path, new: Any) -> Any:
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


# -- valid values --------------------------------------------------------------------------------
@dataclass
class Pool:
    """Real values on the gateway under test: what a valid request would carry."""

    token: str
    admin: str
    values: dict[str, list[str]] = field(default_factory=dict)  # path parameter → real values
    # Parameters that only make sense together (a signed link's root, name, expires and sig).
    bundles: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # Tasks for deletes and cancels (the others stay for every other route).
    doomed: list[str] = field(default_factory=list)

    def choices(self, route: Route) -> dict[str, list[str]]:
        """Each path parameter's real values for ``route``."""
        ends = route.method == "DELETE" or route.template.endswith("/cancel")
        return {
            name: (self.doomed if ends and name in ("task_id", "video_id") else [])
            or self.values.get(name)
            or list(route.enums.get(name, ()))
            or ["x"]
            for name in route.path_params
        }

    def first(self, route: Route) -> dict[str, str]:
        together = self.bundles.get(route.template) or [{}]
        return {name: values[0] for name, values in self.choices(route).items()} | together[0]

    def base(self, route: Route) -> st.SearchStrategy[dict[str, str]]:
        together = self.bundles.get(route.template)
        alone = {name: st.sampled_from(values) for name, values in self.choices(route).items()}
        fixed = st.fixed_dictionaries(alone)
        if not together:
            return fixed
        return st.tuples(fixed, st.sampled_from(together)).map(lambda p: {**p[0], **p[1]})


def _bearer(value: str) -> bytes:
    return b"Bearer " + value.encode()


def _form_field(name: str, value: bytes, filename: bytes | None = None) -> bytes:
    disposition = b'form-data; name="' + name.encode() + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return (
        b"--"
        + BOUNDARY
        + b"\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\n"
        + value
        + b"\r\n"
    )


def multipart_bodies(example: Any, limit: int) -> st.SearchStrategy[Drawn]:
    """Forms: a hostile field value or file name, too many parts, a broken frame."""
    plain = {
        k: v if isinstance(v, str) else to_json(v).decode() for k, v in (example or {}).items()
    }
    names = sorted(plain) or ["prompt"]
    end = b"--" + BOUNDARY + b"--\r\n"

    def form(name: str, drawn: Drawn) -> Drawn:
        text = drawn[1]
        value = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text.data
        rest = b"".join(
            _form_field(k, v.encode("utf-8", "surrogatepass"))
            for k, v in plain.items()
            if k != name
        )
        return drawn[0], rest + _form_field(name, value) + end

    def file(filename: Drawn) -> Drawn:
        return "form-" + filename[0], _form_field(
            "image", b"\x89PNG\r\n\x1a\n garbage", filename[1]
        ) + end

    many = [
        b"".join(_form_field(f"f{i}", b"x") for i in range(100)) + end,
        b"".join(_form_field("image", b"x", b"a.png") for _ in range(20)) + end,
    ]
    broken = [
        _form_field("prompt", b"x"),
        b"--" + BOUNDARY + b"\r\n\r\n\r\n" + end,
        b"--wrong\r\n" + end,
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + end,
    ]
    return st.one_of(
        st.tuples(st.sampled_from(names), texts(limit)).map(lambda p: form(*p)),
        st.tuples(st.just("images"), texts(limit)).map(lambda p: form(*p)),
        header_values("x-filename").map(file),
        st.tuples(st.just("form-many-parts"), st.sampled_from(many)),
        st.tuples(st.just("form-broken"), st.sampled_from(broken)),
    )


@dataclass
class Draft:
    """A valid request to a route, in parts, before one of them is made hostile."""

    route: Route
    path: dict[str, bytes]
    query: list[tuple[bytes, bytes | None]]
    headers: dict[bytes, bytes]
    body: Any
    raw: bytes | None = None
    content_type: bytes = b"application/json"
    method: bytes = b""

    @classmethod
    def of(cls, route: Route, pool: Pool, base: dict[str, str], body: Any) -> Draft:
        secret = {"bearer": pool.token, "admin": pool.admin}.get(route.auth)
        return cls(
            route,
            {p: quote(base.get(p, "x"), safe="").encode() for p in route.path_params},
            [(q.encode(), quote(base[q], safe="").encode()) for q in route.query if q in base],
            {b"authorization": _bearer(secret)} if secret else {},
            body,
            method=route.method.encode(),
        )

    def put(self, slot: str, value: Any, *, example: int = 0, shape: str = "set") -> None:
        """``value`` in ``slot``: a segment, a query value (None: the bare name), a header
        value, a body field's JSON value, or a whole body."""
        family, _, name = slot.partition(".")
        if family == "path":
            self.path[name] = value
        elif family == "query":
            if shape != "repeat":
                self.query = [q for q in self.query if q[0] != name.encode()]
            self.query.append((name.encode(), value))
        elif family == "header":
            self.headers[name.encode()] = value
        elif family == "body":
            where = dict(self.route.body_slots()[slot])[example]
            self.body = _put(self.route.bodies[example], where, value)
        elif slot in ("whole-body", "multipart"):
            self.raw = value
            if slot == "multipart":
                self.content_type = b"multipart/form-data; boundary=" + BOUNDARY
        elif slot == "method":
            self.method = value

    def case(self, slot: str, kind: str) -> Case:
        target = self.route.template.encode()
        for p, segment in self.path.items():
            target = target.replace(b"{" + p.encode() + b"}", segment)
        if self.query:
            target += b"?" + b"&".join(k if v is None else k + b"=" + v for k, v in self.query)
        body = (
            self.raw if self.raw is not None else None if self.body is None else to_json(self.body)
        )
        headers = dict(self.headers)
        if body is not None:
            headers.setdefault(b"content-type", self.content_type)
        return Case(self.route.label, slot, kind, self.method, target, list(headers.items()), body)


@st.composite
def cases(draw: st.DrawFn, route: Route, pool: Pool, limit: int) -> Case:
    """One request to ``route``, valid but for one slot."""
    slot = draw(st.sampled_from(route.slots()))
    family, _, name = slot.partition(".")
    example = draw(st.sampled_from(range(len(route.bodies)))) if route.bodies else 0
    if family == "body":
        example, _ = draw(st.sampled_from(route.body_slots()[slot]))
    draft = Draft.of(
        route, pool, draw(pool.base(route)), route.bodies[example] if route.bodies else None
    )
    shape = "set"
    if family == "path":
        kind, value = draw(segments(limit))
    elif family == "query":
        kind, value = draw(query_values(limit))
        shape = draw(st.sampled_from(["set", "set", "repeat", "bare"]))
        kind, value = ("bare-name", None) if shape == "bare" else (kind, value)
    elif family == "header":
        kind, value = draw(header_values(name))
    elif family == "body":
        where = dict(route.body_slots()[slot])[example]
        kind, value = draw(json_values(_get(route.bodies[example], where), limit))
    elif slot == "whole-body":
        kind, value = draw(whole_bodies(limit))
    elif slot == "multipart":
        kind, value = draw(multipart_bodies(draft.body, limit))
    else:
        kind, value = "method", draw(st.sampled_from(METHODS))
    draft.put(slot, value, example=example, shape=shape)
    return draft.case(slot, kind)


def swept(route: Route, pool: Pool, limit: int) -> list[Case]:
    """The sweep's requests to ``route`` (``Route.sweep``), on the pool's first values."""
    base = pool.first(route)
    out = []
    for slot, kind, value, example in route.sweep(limit):
        draft = Draft.of(route, pool, base, route.bodies[example] if route.bodies else None)
        draft.put(slot, value, example=example)
        out.append(draft.case(slot, kind))
    return out


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

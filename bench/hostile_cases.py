"""The hostile corpus's requests: a valid request to a route (``Draft``, from the ``Pool`` of
real values the runner made on the gateway) with one slot made hostile, drawn by Hypothesis
(``cases``) or one value of each family in every slot (``swept``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.hostile_routes import METHODS, Route, get_at, put_at
from bench.hostile_values import (
    Drawn,
    header_values,
    json_values,
    query_values,
    segments,
    texts,
    to_json,
    whole_bodies,
)
from bench.hostile_wire import Case
from hypothesis import strategies as st

BOUNDARY = b"hostile-boundary"


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
            self.body = put_at(self.route.bodies[example], where, value)
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
        kind, value = draw(json_values(get_at(route.bodies[example], where), limit))
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

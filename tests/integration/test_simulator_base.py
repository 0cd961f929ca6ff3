"""The shared simulator base, through a toy simulator that is only its API (two routes): faults,
scripted outcomes, the upstream's time and counts come from the base, over real HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from reelgate.testing import (
    Fault,
    FaultKind,
    LocalControl,
    ManualClock,
    Outcome,
    UpstreamSimulator,
    serve_in_thread,
)

KEY = "toy-key"


@dataclass
class ToySimulator(UpstreamSimulator):
    """A task is queued for 10 s, then ends as scripted."""

    tasks: dict[str, tuple[float, Outcome]] = field(default_factory=dict)

    base_path: ClassVar[str] = "/v1"
    endpoint_groups: ClassVar[Mapping[str, frozenset[str]]] = {
        "create": frozenset({"create"}),
        "lookup": frozenset({"get"}),
    }

    def api_routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/tasks", self.endpoint("create", self._create), methods=["POST"]),
            Route("/v1/tasks/{id}", self.endpoint("get", self._get), methods=["GET"]),
        ]

    def injected_error(self, status: int) -> Response:
        return JSONResponse(
            {"message": "injected"}, status_code=status, headers={"Retry-After": "99"}
        )

    async def _create(self, request: Request) -> Response:
        if not self.accepts(request.headers.get("x-key", "")):
            return JSONResponse({"message": "bad key"}, status_code=401)
        task_id = secrets.token_hex(4)
        self.tasks[task_id] = (self.now(), self.next_outcome())
        self.record_create()
        return JSONResponse({"id": task_id})

    async def _get(self, request: Request) -> Response:
        created, outcome = self.tasks[request.path_params["id"]]
        done = (self.now() - created) * self.time_scale >= 10
        return JSONResponse({"status": outcome.value if done else "queued"})


@pytest.fixture
def toy() -> Iterator[tuple[ToySimulator, httpx.Client]]:
    sim = ToySimulator(api_keys={KEY}, clock=ManualClock(), timeout_hang_s=0.3)
    handle = serve_in_thread(sim)
    with httpx.Client(base_url=handle.base_url, headers={"x-key": KEY}, timeout=5) as client:
        yield sim, client
    handle.stop()


def test_scripted_outcomes_on_the_upstreams_time(toy: tuple[ToySimulator, httpx.Client]) -> None:
    sim, client = toy
    control = LocalControl(sim)
    sim.script(Outcome.FAILURE)
    failing = client.post("/tasks").json()["id"]
    plain = client.post("/tasks").json()["id"]  # nothing scripted: success
    assert client.get(f"/tasks/{failing}").json() == {"status": "queued"}
    control.advance(10)
    assert client.get(f"/tasks/{failing}").json() == {"status": "failure"}
    assert client.get(f"/tasks/{plain}").json() == {"status": "success"}
    sim.time_scale = 10.0  # advance counts the upstream's seconds, whatever the scale
    later = client.post("/tasks").json()["id"]
    control.advance(10)
    assert client.get(f"/tasks/{later}").json() == {"status": "success"}
    counts = control.counts()
    assert (counts.creates, counts.lookups) == (3, 4)
    assert client.post("/tasks", headers={"x-key": "other"}).status_code == 401
    assert control.counts().creates == 3


def test_error_faults_speak_the_upstreams_dialect(toy: tuple[ToySimulator, httpx.Client]) -> None:
    sim, client = toy
    sim.faults += [
        Fault("create", FaultKind.RATE_LIMITED, retry_after=7),
        Fault("create", FaultKind.RATE_LIMITED_BARE),
        Fault("any", FaultKind.SERVER_ERROR),
    ]
    limited = client.post("/tasks")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    bare = client.post("/tasks")
    assert bare.status_code == 429
    assert "retry-after" not in bare.headers
    broken = client.post("/tasks")
    assert (broken.status_code, broken.json()) == (500, {"message": "injected"})
    assert client.post("/tasks").status_code == 200  # every fault used up
    assert sim.created == 1


@pytest.mark.parametrize("kind", [FaultKind.RESET, FaultKind.TIMEOUT, FaultKind.MALFORMED])
def test_a_lost_answer_still_creates(toy: tuple[ToySimulator, httpx.Client], kind: str) -> None:
    sim, client = toy
    sim.faults.append(Fault("create", kind))
    try:
        client.post("/tasks").json()
    except (httpx.HTTPError, ValueError):
        pass
    else:
        raise AssertionError("the answer was not lost")
    assert sim.created == 1  # the work was done upstream


def test_a_lookup_fault_hits_the_lookup_group_once(toy: tuple[ToySimulator, httpx.Client]) -> None:
    sim, client = toy
    task_id = client.post("/tasks").json()["id"]
    sim.faults += [Fault("lookup", FaultKind.MALFORMED), Fault("lookup", FaultKind.SLOW)]
    with pytest.raises(ValueError):  # noqa: PT011 - json's own error
        client.get(f"/tasks/{task_id}").json()
    slow = client.get(f"/tasks/{task_id}")  # trickled, but whole and right
    assert (slow.status_code, slow.json()) == (200, {"status": "queued"})
    assert client.get(f"/tasks/{task_id}").json() == {"status": "queued"}
    assert sim.calls == {"create": 1, "get": 3}

"""``reelgate.Client``: runs the shared operations with blocking I/O (``httpx.Client``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, assert_never

import httpx

from reelgate.client import _flows as flows
from reelgate.client._base import BaseClient
from reelgate.client._flows import Action, Close, Iterate, Next, Runner, Send, Sleep
from reelgate.client._wire import CHUNK_SIZE, ListFilters
from reelgate.client.models import Page, Task

T = TypeVar("T")


class Client(BaseClient[Task, Path, Page, Iterator[Task]]):
    """The blocking client of reelgate's video API (arguments and methods: ``BaseClient``).

    Use it in a ``with`` block, or call ``close()``.
    """

    _http: httpx.Client

    def _connect(self) -> None:
        self._http = httpx.Client(follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _task(self, flow: flows.Flow[Task]) -> Task:
        return self._run(flow)

    def _path(self, flow: flows.Flow[Path]) -> Path:
        return self._run(flow)

    def _page(self, filters: ListFilters) -> Page:
        tasks, more, cursor = self._run(flows.list_page(self._wire, filters))
        return Page(tasks, more, cursor, lambda after: self._tasks_after(filters, after))

    def _tasks_after(self, filters: ListFilters, after: str) -> Iterator[Task]:
        return self._tasks(flows.list_tasks(self._wire, {**filters, "after": after}))

    def _tasks(self, flow: flows.Flow[None]) -> Iterator[Task]:
        return self._steps(Runner(flow))

    def _run(self, flow: flows.Flow[T]) -> T:
        runner = Runner(flow)
        for _ in self._steps(runner):
            pass
        return runner.result

    def _steps(self, runner: Runner[Any]) -> Iterator[Task]:
        try:
            action = runner.advance()
            while True:
                yield from runner.emitted()
                if action is None:
                    return
                action = runner.advance(self._perform(action))
        finally:
            for response in runner.finish():
                response.close()

    def _perform(self, action: Action) -> object:
        try:
            match action:
                case Send(request, stream):
                    return self._http.send(request, stream=stream)
                case Iterate(response, lines):
                    return response.iter_lines() if lines else response.iter_bytes(CHUNK_SIZE)
                case Next(source):
                    return next(source, None)
                case Sleep(seconds):
                    (self._sleep or time.sleep)(seconds)
                case Close(response):
                    response.close()
                case _:
                    assert_never(action)
        except httpx.TransportError as exc:
            return exc
        return None

"""``reelgate.AsyncClient``: runs the shared operations with asyncio (``httpx.AsyncClient``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, assert_never

import httpx

from reelgate.client import _flows as flows
from reelgate.client._base import BaseClient
from reelgate.client._flows import Action, Close, Iterate, Next, Runner, Send, Sleep
from reelgate.client._wire import CHUNK_SIZE, ListFilters
from reelgate.client.models import AsyncPage, Task

T = TypeVar("T")
Awaited = Coroutine[Any, Any, T]


class AsyncClient(
    BaseClient[Awaited[Task], Awaited[Path], Awaited[AsyncPage], AsyncIterator[Task]]
):
    """The asyncio client: ``Client``'s arguments and methods, awaited (``BaseClient``).

    ``stream()`` and ``list_all()`` are async iterators, and ``async for`` over a page goes on
    through the following pages. Use it in an ``async with`` block, or call ``aclose()``.
    """

    _http: httpx.AsyncClient

    def _connect(self) -> None:
        self._http = httpx.AsyncClient(follow_redirects=True)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _task(self, flow: flows.Flow[Task]) -> Awaited[Task]:
        return self._run(flow)

    def _path(self, flow: flows.Flow[Path]) -> Awaited[Path]:
        return self._run(flow)

    async def _page(self, filters: ListFilters) -> AsyncPage:
        tasks, more, cursor = await self._run(flows.list_page(self._wire, filters))
        return AsyncPage(tasks, more, cursor, lambda after: self._tasks_after(filters, after))

    def _tasks_after(self, filters: ListFilters, after: str) -> AsyncIterator[Task]:
        return self._tasks(flows.list_tasks(self._wire, {**filters, "after": after}))

    def _tasks(self, flow: flows.Flow[None]) -> AsyncIterator[Task]:
        return self._steps(Runner(flow))

    async def _run(self, flow: flows.Flow[T]) -> T:
        runner = Runner(flow)
        async for _ in self._steps(runner):
            pass
        return runner.result

    async def _steps(self, runner: Runner[Any]) -> AsyncIterator[Task]:
        try:
            action = runner.advance()
            while True:
                for task in runner.emitted():
                    yield task
                if action is None:
                    return
                action = runner.advance(await self._perform(action))
        finally:
            for response in runner.finish():
                await response.aclose()

    async def _perform(self, action: Action) -> object:
        try:
            match action:
                case Send(request, stream):
                    return await self._http.send(request, stream=stream)
                case Iterate(response, lines):
                    return response.aiter_lines() if lines else response.aiter_bytes(CHUNK_SIZE)
                case Next(source):
                    return await anext(source, None)
                case Sleep(seconds):
                    slept = (self._sleep or asyncio.sleep)(seconds)
                    if inspect.isawaitable(slept):
                        await slept
                case Close(response):
                    await response.aclose()
                case _:
                    assert_never(action)
        except httpx.TransportError as exc:
            return exc
        return None

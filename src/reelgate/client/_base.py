"""The methods both clients offer, declared and documented once.

Each method builds its operation (``_flows``) and hands it to the client's runner: ``Client``
runs it to a value, ``AsyncClient`` to an awaitable of that value. The type parameters say what
each kind of operation comes back as (``Task`` or ``Awaitable[Task]``, …).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar, Unpack

import httpx

from reelgate.client import _flows as flows
from reelgate.client._wire import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    CreateOptions,
    ListFilters,
    Variant,
    Wire,
)
from reelgate.client.models import Task

TaskT = TypeVar("TaskT")
PathT = TypeVar("PathT")
PageT = TypeVar("PageT")
TasksT = TypeVar("TasksT")


class BaseClient(ABC, Generic[TaskT, PathT, PageT, TasksT]):
    """A client of reelgate's video API.

    ``base_url`` defaults to ``$REELGATE_API_URL`` (else ``http://127.0.0.1:8000``) and ``token``
    to ``$REELGATE_API_TOKEN``. ``timeout`` is per request (long-polls add their wait to it).
    Connection errors, 429 and 502/503/504 are retried up to ``max_retries`` times with
    exponential backoff and jitter, honouring ``Retry-After``; ``sleep`` does the waiting between
    tries (``time.sleep`` / ``asyncio.sleep``; pass your own in tests).
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self._wire = Wire.configure(base_url, token, timeout, max_retries)
        self._sleep = sleep
        self._connect()

    @property
    def base_url(self) -> str:
        return self._wire.base_url

    def create(self, model: str, prompt: str, **options: Unpack[CreateOptions]) -> TaskT:
        """Submit a task; it comes back ``queued``.

        Options: ``image`` / ``images`` (URLs, ``data:`` URIs, or local paths sent as ``data:``
        URIs), ``duration`` (s), ``size`` (``"1280x720"``), ``metadata`` (the model's options),
        ``callback_url``, ``idempotency_key`` (default: a fresh UUID per call, kept across its
        retries, so a retried create never makes a second task).
        """
        return self._task(flows.create(self._wire, model, prompt, options))

    def get(self, task_id: str, *, wait: float | None = None) -> TaskT:
        """The task now; with ``wait`` (up to 60 s), once its status changes within that time."""
        return self._task(flows.get(self._wire, task_id, wait))

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Task], object] | None = None,
    ) -> TaskT:
        """The task once it has ended, ``success`` or ``failure`` (a failure does not raise).

        Long-polls the server, which answers as soon as the task changes: no sleeping. Each new
        state goes to ``on_progress(task)``. After ``timeout`` seconds, ``WaitTimeoutError``
        (its ``task`` is the last state seen).
        """
        return self._task(flows.wait(self._wire, task_id, timeout, on_progress))

    def create_and_wait(
        self,
        model: str,
        prompt: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Task], object] | None = None,
        **options: Unpack[CreateOptions],
    ) -> TaskT:
        """``create`` then ``wait``."""
        flow = flows.create_and_wait(self._wire, model, prompt, options, timeout, on_progress)
        return self._task(flow)

    def cancel(self, task_id: str) -> TaskT:
        """Cancel a queued task: it ends as ``failure`` with code ``cancelled``. A running or
        finished task raises ``ConflictError`` (``not_cancellable``)."""
        return self._task(flows.cancel(self._wire, task_id))

    def stream(self, task_id: str) -> TasksT:
        """Each status of the task as the server pushes it (server-sent events), ending after the
        terminal one; a dropped connection is resumed where it stopped."""
        return self._tasks(flows.stream(self._wire, task_id))

    def download(
        self, task_id: str, dest: str | os.PathLike[str], *, variant: Variant = "video"
    ) -> PathT:
        """Stream the task's ``video`` (or ``last_frame``) to ``dest``, a file or a directory to
        name it in; returns the file's path. The file is never held in memory."""
        return self._path(flows.download(self._wire, task_id, Path(dest), variant))

    def list(self, **filters: Unpack[ListFilters]) -> PageT:
        """One page of your tasks, newest first (``status``, ``model``, ``limit`` per page,
        ``after`` a task id). Iterating the page goes on through the following pages."""
        return self._page(filters)

    def list_all(self, **filters: Unpack[ListFilters]) -> TasksT:
        """Every task that matches, newest first, fetching pages as the iteration goes."""
        return self._tasks(flows.list_tasks(self._wire, filters))

    # How each client does I/O, and what it runs operations to.

    @abstractmethod
    def _connect(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def _task(self, flow: flows.Flow[Task]) -> TaskT:
        raise NotImplementedError

    @abstractmethod
    def _path(self, flow: flows.Flow[Path]) -> PathT:
        raise NotImplementedError

    @abstractmethod
    def _page(self, filters: ListFilters) -> PageT:
        raise NotImplementedError

    @abstractmethod
    def _tasks(self, flow: flows.Flow[None]) -> TasksT:
        raise NotImplementedError

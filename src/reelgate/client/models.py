"""What the SDK returns: a task as the status GET describes it, and pages of tasks.

Fields the server adds later are kept (as extra attributes), so an older SDK keeps working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TaskStatus = Literal["queued", "in_progress", "success", "failure"]
TERMINAL: frozenset[str] = frozenset({"success", "failure"})
TasksT = TypeVar("TasksT")


class TaskError(BaseModel):
    """Why a task failed: a stable ``code`` (``cancelled``, ``expired``, …) and a ``message``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: str
    message: str = ""


class Task(BaseModel):
    """One video task. ``result_url`` is the video once ``status`` is ``success``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    task_id: str
    status: TaskStatus
    progress: str = ""
    fail_reason: str = ""
    submit_time: int = 0
    start_time: int = 0
    finish_time: int = 0
    model: str = ""
    result_url: str = ""
    last_frame_url: str = ""
    error: TaskError | None = None
    # Not part of the task: the server's hint (openai-poll-after-ms / Retry-After) of when to
    # look again, about half the time it expects the task still needs; None once it has ended.
    poll_after: float | None = Field(default=None, exclude=True)

    @property
    def done(self) -> bool:
        """True once the task has ended (``success`` or ``failure``): it will not change again."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class _Page(Generic[TasksT]):
    data: list[Task]
    has_more: bool
    next_after: str | None
    _rest: Callable[[str], TasksT] = field(repr=False, compare=False)


class Page(_Page[Iterator[Task]]):
    """One page of ``Client.list()``; iterating it goes on through the following pages."""

    def __iter__(self) -> Iterator[Task]:
        yield from self.data
        if self.has_more and self.next_after:
            yield from self._rest(self.next_after)


class AsyncPage(_Page[AsyncIterator[Task]]):
    """One page of ``AsyncClient.list()``; ``async for`` goes on through the following pages."""

    async def __aiter__(self) -> AsyncIterator[Task]:
        for task in self.data:
            yield task
        if self.has_more and self.next_after:
            async for task in self._rest(self.next_after):
                yield task

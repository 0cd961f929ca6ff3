"""``reelgate video …``: create, follow, list, cancel and download videos from a terminal.

A client of a running reelgate (the Python SDK underneath), for people: a progress display while
waiting, a table for lists, JSON for single tasks. Errors are one line on stderr:
``reelgate: <code>: <message>``.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Task as ProgressTask
from rich.table import Table
from rich.text import Text

from reelgate import Client, ReelgateClientError, Task

video_app = typer.Typer(
    help="Create and fetch videos through a running reelgate (its HTTP API).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

# The server's poll hint is half the time it expects a task still needs, capped at 30 s.
POLL_HINT_CAP = 30.0
URL_HELP = "Server URL (default: $REELGATE_API_URL, else http://127.0.0.1:8000)"
TOKEN_HELP = "API token (default: $REELGATE_API_TOKEN)"  # noqa: S105 - help text, not a secret
UrlOption = Annotated[str | None, typer.Option("--url", help=URL_HELP, show_default=False)]
TokenOption = Annotated[str | None, typer.Option("--token", help=TOKEN_HELP, show_default=False)]


class StatusChoice(enum.StrEnum):
    queued = "queued"
    in_progress = "in_progress"
    success = "success"
    failure = "failure"


class VariantChoice(enum.StrEnum):
    video = "video"
    last_frame = "last_frame"


def _fail(code: str, message: str, exit_code: int = 1) -> NoReturn:
    """One plain line on stderr (no console wrapping: it must stay one line), then exit."""
    print(f"reelgate: {code}: {' '.join(message.split())}", file=sys.stderr)
    raise typer.Exit(exit_code)


@contextlib.contextmanager
def _client(url: str | None, token: str | None) -> Iterator[Client]:
    try:
        with Client(url, token) as client:
            yield client
    except ReelgateClientError as exc:
        _fail(exc.code, exc.message)
    except OSError as exc:  # the file given to --out or --image
        _fail("io_error", str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", "stopped; a task already created goes on", 130)


def _print_task(task: Task) -> None:
    with contextlib.suppress(BrokenPipeError):
        out.print_json(task.model_dump_json())


def _image(value: str) -> str | Path:
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        _fail("invalid_parameter", f"--image {value}: not a file, an http(s) URL or a data: URI", 2)
    return path


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        _fail("invalid_parameter", f"--metadata is not JSON: {exc}", 2)
    if not isinstance(parsed, dict):
        _fail("invalid_parameter", "--metadata must be a JSON object", 2)
    return parsed


class _EstimateColumn(ProgressColumn):
    """Time left, as the server estimates it (its poll hint is half the remaining time)."""

    def render(self, task: ProgressTask) -> Text:
        hint, seen_at = task.fields.get("poll_after"), task.fields.get("seen_at", 0.0)
        if task.finished or hint is None:
            return Text("")
        if hint >= POLL_HINT_CAP:
            return Text("over a minute left", style="progress.remaining")
        left = seen_at + 2 * hint - time.monotonic()
        if left <= 0:
            return Text("any moment now", style="progress.remaining")
        return Text(f"about {math.ceil(left)} s left", style="progress.remaining")


def _percent(progress: str) -> float:
    number = progress.rstrip("%")
    return float(number) if number.replace(".", "", 1).isdigit() else 0.0


def _follow(client: Client, task: Task) -> Task:
    """Wait for the task with a live display on stderr: status, server progress, elapsed time,
    and the server's estimate of the time left."""
    err.print(f"created {task.task_id}", highlight=False)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        _EstimateColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        bar = progress.add_task(task.status, total=100, poll_after=None)

        def show(seen: Task) -> None:
            progress.update(
                bar,
                description=seen.status,
                completed=_percent(seen.progress),
                poll_after=seen.poll_after,
                seen_at=time.monotonic(),
            )

        return client.wait(task.task_id, on_progress=show)


@video_app.command("create")
def create(
    model: Annotated[str, typer.Option("--model", "-m", help="Model (see GET /v1/models)")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What the video shows")],
    image: Annotated[
        list[str] | None,
        typer.Option("--image", help="FILE (sent as a data: URI) or URL; repeat for several"),
    ] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds")] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 1280x720")] = None,
    metadata: Annotated[
        str | None, typer.Option(help="The model's options as JSON, e.g. '{\"fps\": 12}'")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until the task ends")] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Download the video here (implies --wait)")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a video task and print it (JSON); with --wait, follow it to the end."""
    images = [_image(value) for value in image or ()]
    options = _metadata(metadata)
    with _client(url, token) as client:
        task = client.create(
            model,
            prompt,
            image=images[0] if len(images) == 1 else None,
            images=images if len(images) > 1 else None,
            duration=duration,
            size=size,
            metadata=options,
        )
        if wait or out_file:
            task = _follow(client, task)
        if task.status == "failure":
            _print_task(task)
            error = task.error
            _fail(error.code if error else "failure", error.message if error else task.fail_reason)
        if out_file:
            saved = client.download(task.task_id, out_file)
            err.print(f"saved {saved}", highlight=False)
    _print_task(task)


@video_app.command("get")
def get(
    task_id: Annotated[str, typer.Argument(help="The task id (task_…)")],
    wait: Annotated[
        float | None, typer.Option(help="Wait up to N seconds (≤ 60) for a status change")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print a task (JSON)."""
    with _client(url, token) as client:
        task = client.get(task_id, wait=wait)
    _print_task(task)


@video_app.command("list")
def list_tasks(
    status: Annotated[StatusChoice | None, typer.Option(help="Only tasks in this status")] = None,
    model: Annotated[str | None, typer.Option(help="Only tasks of this model")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many tasks to show")] = 20,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your tasks, newest first (a table)."""
    table = Table("id", "status", "model", "created", "error", box=box.SIMPLE_HEAD)
    table.columns[0].no_wrap = True
    with _client(url, token) as client:
        found = client.list_all(
            status=status.value if status else None, model=model, limit=min(limit, 100)
        )
        for task in itertools.islice(found, limit):
            created = time.strftime("%m-%d %H:%M:%S", time.localtime(task.submit_time))
            error = task.error.code if task.error else ""
            table.add_row(task.task_id, task.status, task.model, created, error)
    with contextlib.suppress(BrokenPipeError):
        # Piped: no terminal width to fit, and rows cut at 80 columns would serve no one.
        (out if out.is_terminal else Console(width=200)).print(table, highlight=False)


@video_app.command("cancel")
def cancel(
    task_id: Annotated[str, typer.Argument(help="The task id (task_…)")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a queued task and print it (JSON)."""
    with _client(url, token) as client:
        task = client.cancel(task_id)
    _print_task(task)


@video_app.command("download")
def download(
    task_id: Annotated[str, typer.Argument(help="The task id (task_…)")],
    out_file: Annotated[Path, typer.Option("--out", help="File (or directory) to write")],
    variant: Annotated[VariantChoice, typer.Option(help="Which file")] = VariantChoice.video,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Download a finished task's video (or last frame)."""
    with _client(url, token) as client:
        saved = client.download(task_id, out_file, variant=variant.value)
    out.print(str(saved), markup=False, highlight=False, soft_wrap=True)

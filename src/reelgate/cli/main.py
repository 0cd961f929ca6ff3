"""Commands for operators on the host: run gateway and worker, manage tokens, look at tasks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from reelgate import logs
from reelgate.cli.serving import run_granian, run_uvicorn
from reelgate.cli.simulate import simulate
from reelgate.cli.video import video_app
from reelgate.core.errors import ReelgateError
from reelgate.core.ids import ApiToken, new_token
from reelgate.core.pricing import Balance
from reelgate.metrics import start_metrics_server
from reelgate.settings import CONFIG_FILE_ENV, Settings, load_settings
from reelgate.store.sql import SqlStore, open_store

app = typer.Typer(help="reelgate: a durable gateway for AI video generation.", no_args_is_help=True)
token_app = typer.Typer(
    help="Manage API tokens (the plaintext is shown once).", no_args_is_help=True
)
task_app = typer.Typer(
    help="Look at tasks (operator view, across all tokens).", no_args_is_help=True
)
app.add_typer(token_app, name="token")
app.add_typer(task_app, name="task")
app.command("simulate")(simulate)
app.add_typer(video_app, name="video")

out = Console()


def _say(message: str) -> None:
    """One plain line on stderr (no console wrapping: it must stay one line)."""
    print(message, file=sys.stderr)


T = TypeVar("T")

ConfigOption = Annotated[
    str | None, typer.Option("--config", help="Path to a reelgate.toml (default ./reelgate.toml)")
]


class ServerKind(enum.StrEnum):
    granian = "granian"
    uvicorn = "uvicorn"


def _settings(config: str | None = None, **overrides: object) -> Settings:
    if config:
        os.environ[CONFIG_FILE_ENV] = config
    try:
        return load_settings(**overrides)
    except ReelgateError as exc:
        _say(f"reelgate: {exc.message}")
        raise typer.Exit(2) from None


def _run(settings: Settings, job: Callable[[SqlStore], Awaitable[T]]) -> T:
    async def go() -> T:
        store = await open_store(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout,
            statement_timeout=settings.database_statement_timeout,
        )
        try:
            await store.migrate()
            return await job(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except ReelgateError as exc:
        _say(f"reelgate: {exc.message}")
        raise typer.Exit(1) from None


def _configure_logging(settings: Settings) -> None:
    logs.configure(settings)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (REELGATE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (REELGATE_PORT)")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the background worker in-process")
    ] = True,
    server: Annotated[ServerKind, typer.Option(help="HTTP server")] = ServerKind.granian,
    config: ConfigOption = None,
) -> None:
    """Start the gateway. On first start it creates an API token and prints it once."""
    settings = _settings(config, host=host, port=port)
    _configure_logging(settings)

    async def bootstrap(store: SqlStore) -> str | None:
        from reelgate.assembly import secret_key

        await secret_key(settings, store)
        if await store.count_active_tokens():
            return None
        token = new_token()
        await store.create_token("default", token, int(time.time()))
        return token.plaintext

    first = _run(settings, bootstrap)
    base = settings.base_url
    if first:
        # Plain print: the curl line must survive copy-paste, so no console wrapping.
        print(
            "\nreelgate: created your first API token (shown only once):\n\n"
            f"  {first}\n\n"
            f"Open the console and sign in with it: {base}/console/\n\n"
            "Try it:\n\n"
            f"  curl -s {base}/v1/video/generations -H 'Authorization: Bearer {first}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model":"sandbox-t2v","prompt":"a paper boat on a rainy street"}\'\n\n'
            f"  curl -s {base}/v1/video/generations/TASK_ID -H 'Authorization: Bearer {first}'\n"
        )
    print(f"reelgate listening on {base} (console: {base}/console/, API docs: {base}/docs)")
    sys.stdout.flush()

    # The server process reads its settings from the environment: pass the CLI's overrides on.
    os.environ["REELGATE_HOST"] = settings.host
    os.environ["REELGATE_PORT"] = str(settings.port)
    os.environ["REELGATE_WORKER_ENABLED"] = "true" if worker else "false"
    # Connection limits and timeouts are set on purpose: see reelgate.cli.serving.
    if server is ServerKind.uvicorn:
        run_uvicorn(settings)
    else:
        run_granian(settings)


@app.command("worker")
def worker_command(config: ConfigOption = None) -> None:
    """Run only the background worker (for separate worker processes)."""
    settings = _settings(config)
    _configure_logging(settings)

    async def go() -> None:
        from reelgate.assembly import start_runtime

        # A worker answers no status GETs: caching the tasks it writes would only cost memory.
        runtime = await start_runtime(
            settings.model_copy(update={"task_cache_size": 0}), run_worker=True
        )
        assert runtime.stop is not None
        assert runtime.worker_task is not None
        if settings.metrics_port is not None:
            # A worker has no HTTP API: its metrics get a port of their own.
            start_metrics_server(settings.metrics_port, settings.host)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop.set)
        try:
            await runtime.worker_task
        finally:
            await runtime.close()

    try:
        asyncio.run(go())
    except ReelgateError as exc:
        _say(f"reelgate: {exc.message}")
        raise typer.Exit(1) from None


ModelsOption = Annotated[
    str | None, typer.Option("--models", help="Allowed models, comma-separated (default: all)")
]
RpmOption = Annotated[
    int | None, typer.Option("--rpm", min=1, help="Creates per minute, across all replicas")
]
ConcurrentOption = Annotated[
    int | None, typer.Option("--max-concurrent", min=1, help="Unfinished tasks at once")
]


def _models(value: str | None) -> tuple[str, ...]:
    return tuple(m.strip() for m in (value or "").split(",") if m.strip())


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A label for the token")] = "default",
    models: ModelsOption = None,
    rpm: RpmOption = None,
    max_concurrent: ConcurrentOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print its plaintext (shown only this once)."""
    settings = _settings(config)
    token = new_token()

    async def job(store: SqlStore) -> None:
        await store.create_token(
            name,
            token,
            int(time.time()),
            models=_models(models),
            rpm=rpm,
            max_concurrent=max_concurrent,
        )

    _run(settings, job)
    out.print(token.plaintext, markup=False, highlight=False)


@token_app.command("limits")
def token_limits(
    ref: Annotated[str, typer.Argument(help="Token id (tok_…) or visible prefix (rg_…)")],
    models: ModelsOption = None,
    rpm: RpmOption = None,
    max_concurrent: ConcurrentOption = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every limit not given here")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Change a token's limits; they apply within the token cache TTL."""
    settings = _settings(config)
    changes: dict[str, object] = {}
    if models is not None or clear:
        changes["models"] = _models(models)
    if rpm is not None or clear:
        changes["rpm"] = rpm
    if max_concurrent is not None or clear:
        changes["max_concurrent"] = max_concurrent
    token = _run(settings, lambda store: store.set_token_limits(ref, **changes))
    if token is None:
        _say(f"reelgate: no single token matches '{ref}'")
        raise typer.Exit(1)
    out.print(f"{token.id}: {_limits_text(token)}", markup=False, highlight=False)


@token_app.command("quota")
def token_quota(
    ref: Annotated[str, typer.Argument(help="Token id (tok_…) or visible prefix (rg_…)")],
    grant: Annotated[int | None, typer.Option(help="Add to the balance (negative: take)")] = None,
    set_to: Annotated[int | None, typer.Option("--set", help="Make the balance this")] = None,
    limited: Annotated[
        bool | None, typer.Option("--limited/--unlimited", help="Enforce the quota or not")
    ] = None,
    note: Annotated[str, typer.Option(help="Kept on the ledger entry")] = "",
    entries: Annotated[int, typer.Option(min=0, help="Also list the last N ledger entries")] = 0,
) -> None:
    """Show or change a token's quota: --grant/--set turn it on; charges are recorded either way."""
    settings = _settings()

    async def job(store: SqlStore) -> tuple[ApiToken, Balance, list[dict[str, Any]]] | None:
        found = await store.change_quota(
            ref, time.time(), grant=grant, set_to=set_to, limited=limited, note=note
        )
        if found is None:
            return None
        rows = await store.ledger_entries(found[0].id, limit=entries) if entries else []
        return (*found, rows)

    done = _run(settings, job)
    if done is None:
        _say(f"reelgate: no single token matches '{ref}'")
        raise typer.Exit(1)
    token, balance, rows = done
    state = "limited" if balance.limited else "unlimited (charges recorded)"
    out.print(
        f"{token.id}: balance {balance.amount} {settings.billing_currency}, {state}",
        markup=False,
        highlight=False,
    )
    if rows:
        table = Table("id", "at", "kind", "amount", "task", "note")
        for r in rows:
            at = dt.datetime.fromtimestamp(r["created_at"], dt.UTC)
            table.add_row(
                str(r["id"]),
                at.strftime("%Y-%m-%d %H:%M:%S"),
                str(r["kind"]),
                str(r["amount"]),
                str(r["task_id"] or ""),
                str(r["note"]),
            )
        out.print(table)


@token_app.command("rotate")
def token_rotate(
    ref: Annotated[str, typer.Argument(help="Token id (tok_…) or visible prefix (rg_…)")],
    config: ConfigOption = None,
) -> None:
    """Give a token a new secret (printed once); the old one stops working."""
    settings = _settings(config)
    token = new_token()
    found = _run(settings, lambda store: store.rotate_token(ref, token))
    if found is None:
        _say(f"reelgate: no single active token matches '{ref}'")
        raise typer.Exit(1)
    out.print(token.plaintext, markup=False, highlight=False)


def _limits_text(t: ApiToken) -> str:
    parts = [
        f"models {','.join(t.models)}" if t.models else "all models",
        f"{t.rpm}/min" if t.rpm else "no rate limit",
        f"{t.max_concurrent} at once" if t.max_concurrent else "no concurrency limit",
    ]
    return "; ".join(parts)


@token_app.command("list")
def token_list(config: ConfigOption = None) -> None:
    """List tokens: id, name, visible prefix, state."""
    settings = _settings(config)
    tokens = _run(settings, lambda store: store.list_tokens())
    table = Table("id", "name", "prefix", "created", "state", "limits")
    for t in tokens:
        created = dt.datetime.fromtimestamp(t.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            t.id,
            t.name,
            t.prefix + "…",
            created,
            "active" if t.active else "revoked",
            _limits_text(t),
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    ref: Annotated[str, typer.Argument(help="Token id (tok_…) or visible prefix (rg_…)")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token; requests with it fail with 401 within the token cache TTL."""
    settings = _settings(config)
    token = _run(settings, lambda store: store.revoke_token(ref, int(time.time())))
    if token is None:
        _say(f"reelgate: no single token matches '{ref}'")
        raise typer.Exit(1)
    out.print(f"revoked {token.id} ({token.name})", markup=False, highlight=False)


@task_app.command("get")
def task_get(
    task_id: Annotated[str, typer.Argument(help="The task id (task_…)")],
    config: ConfigOption = None,
) -> None:
    """Print a task as JSON (all fields, operator view)."""
    settings = _settings(config)
    task = _run(settings, lambda store: store.find_task(task_id))
    if task is None:
        _say(f"reelgate: no task '{task_id}'")
        raise typer.Exit(1)
    data = dataclasses.asdict(task)
    data["status"] = task.status.value
    data["progress"] = task.progress
    with contextlib.suppress(BrokenPipeError):
        out.print_json(json.dumps(data))

"""``reelgate channel …``: channels on the host (the same as ``/v1/admin/channels``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.table import Table

from reelgate.api.admin_channels import (
    ChannelFields,
    NewChannel,
    channel_changes,
    new_channel,
    parse_fields,
)
from reelgate.assembly import channel_book
from reelgate.cli.main import ConfigOption, _run, _say, _settings, out
from reelgate.core.channels import StoredChannel
from reelgate.core.errors import ReelgateError
from reelgate.service.channels import ChannelBook
from reelgate.store.sql import SqlStore

channel_app = typer.Typer(
    help="Channels (credentials for one provider each): add, list, change, enable, disable, "
    "probe, remove.",
    no_args_is_help=True,
)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
KEY_ENV = "REELGATE_CHANNEL_API_KEY"

Priority = Annotated[int | None, typer.Option(help="Higher priorities are used first")]
Weight = Annotated[int | None, typer.Option(min=1, help="Share of tasks within a priority")]
Models = Annotated[
    str | None, typer.Option(help="Models it serves, comma-separated (default: all)")
]
Region = Annotated[str | None, typer.Option(help="One of the provider's regions")]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help="Overrides the region's URL")]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="A provider option as KEY=VALUE (repeatable; VALUE is read as JSON when it parses)",
    ),
]
SecretFile = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        help="Read the secret from this file (for multi-line ones: a service-account JSON)",
    ),
]
MaxQueued = Annotated[int | None, typer.Option(min=1, help="Tasks in the upstream's queue")]
MaxInFlight = Annotated[int | None, typer.Option(min=1, help="Tasks queued or running")]
Rpm = Annotated[int | None, typer.Option(min=1, help="Upstream requests per minute")]


def _with_book(config: str | None, job: Callable[[ChannelBook], Awaitable[T]]) -> T:
    settings = _settings(config)

    async def go(store: SqlStore) -> T:
        book = channel_book(settings, store)
        try:
            await book.start()
            return await job(book)
        finally:
            await book.close()

    return _run(settings, go)


def _parsed(model: type[M], **given: Any) -> M:
    """The options given (``None``: not given) as ``model``, or a one-line error and exit 2."""
    fields = {k: v for k, v in given.items() if v is not None}
    if "models" in fields:
        fields["models"] = [m.strip() for m in fields["models"].split(",") if m.strip()]
    try:
        return parse_fields(model, fields)
    except ReelgateError as exc:
        _say(f"reelgate: {exc.message}")
        raise typer.Exit(2) from None


def _secret(prompt: bool, path: Path | None = None) -> str | None:
    """The secret from ``--secret-file``, else REELGATE_CHANNEL_API_KEY, else asked for without
    echo (never an argument: arguments end up in shell history and process lists)."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _say(f"reelgate: cannot read --secret-file {path}: {exc}")
            raise typer.Exit(2) from None
    key = os.environ.get(KEY_ENV)
    if key or not prompt:
        return key
    entered: str = typer.prompt("Secret (API key)", hide_input=True)
    return entered


def _options(pairs: list[str] | None) -> dict[str, Any] | None:
    """``--option KEY=VALUE`` pairs as an object (VALUE as JSON when it parses, else text)."""
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            _say(f"reelgate: --option wants KEY=VALUE, got {pair!r}")
            raise typer.Exit(2)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        found[key.strip()] = value
    return found


def _show(row: StoredChannel) -> None:
    c = row.channel
    state = c.state(time.time()).value
    why = f" ({c.disabled_by}: {c.disabled_reason})" if c.disabled_reason else ""
    out.print(f"{c.name}: {state}{why}", markup=False, highlight=False)


@channel_app.command("add")
def channel_add(
    name: Annotated[str, typer.Argument(help="A short name: a-z, 0-9, - and _")],
    provider: Annotated[str, typer.Option(help="The upstream (see `reelgate providers`)")],
    region: Region = None,
    base_url: BaseUrl = None,
    option: Options = None,
    secret_file: SecretFile = None,
    priority: Priority = None,
    weight: Weight = None,
    models: Models = None,
    max_queued: MaxQueued = None,
    max_in_flight: MaxInFlight = None,
    rpm: Rpm = None,
    config: ConfigOption = None,
) -> None:
    """Add a channel. The secret is read from --secret-file or REELGATE_CHANNEL_API_KEY or asked
    for, and stored encrypted with REELGATE_ENCRYPTION_KEY."""
    spec = _parsed(
        NewChannel,
        name=name,
        provider=provider,
        region=region,
        base_url=base_url,
        options=_options(option),
        priority=priority,
        weight=weight,
        models=models,
        max_queued=max_queued,
        max_in_flight=max_in_flight,
        rpm=rpm,
        api_key=_secret(prompt=True, path=secret_file),
    )
    row = _with_book(
        config,
        lambda book: book.add(new_channel(spec, book.default_caps(spec.provider)), spec.api_key),
    )
    _show(row)


@channel_app.command("set")
def channel_set(
    name: Annotated[str, typer.Argument(help="The channel")],
    region: Region = None,
    base_url: BaseUrl = None,
    option: Options = None,
    priority: Priority = None,
    weight: Weight = None,
    models: Models = None,
    max_queued: MaxQueued = None,
    max_in_flight: MaxInFlight = None,
    rpm: Rpm = None,
    new_key: Annotated[
        bool, typer.Option("--new-key", help="Replace the secret (from the env or a prompt)")
    ] = False,
    secret_file: SecretFile = None,
    config: ConfigOption = None,
) -> None:
    """Change a channel added at run time (one from settings changes in settings)."""
    spec = _parsed(
        ChannelFields,
        region=region,
        base_url=base_url,
        options=_options(option),
        priority=priority,
        weight=weight,
        models=models,
        max_queued=max_queued,
        max_in_flight=max_in_flight,
        rpm=rpm,
        api_key=_secret(prompt=True, path=secret_file) if new_key or secret_file else None,
    )
    try:
        changes = channel_changes(spec)
    except ReelgateError as exc:
        _say(f"reelgate: {exc.message}")
        raise typer.Exit(2) from None
    _show(_with_book(config, lambda book: book.update(name, changes)))


@channel_app.command("list")
def channel_list(config: ConfigOption = None) -> None:
    """Channels with their state, priority, weight, caps and load."""

    async def job(book: ChannelBook) -> tuple[list[StoredChannel], dict[Any, Any]]:
        return list(await book.store.list_channels()), await book.store.channel_load()

    rows, load = _with_book(config, job)
    table = Table("name", "provider", "source", "state", "prio", "weight", "models", "caps", "load")
    now = time.time()
    for row in rows:
        c = row.channel
        state = c.state(now).value
        if c.disabled_reason:
            state += f" ({c.disabled_by}: {c.disabled_reason[:60]})"
        caps = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("queued", c.caps.max_queued),
                ("in flight", c.caps.max_in_flight),
                ("rpm", c.caps.rpm),
            )
            if v is not None
        )
        n = load.get((c.provider, c.name), {})
        busy = f"{n.get('waiting', 0)} waiting, {n.get('queued', 0)} queued, "
        busy += f"{n.get('running', 0)} running"
        table.add_row(
            c.name,
            c.provider,
            c.source,
            state,
            str(c.priority),
            str(c.weight),
            ",".join(c.models) if c.models is not None else "all",
            caps or "none",
            busy,
        )
    out.print(table)
    created = [r.channel.created_at for r in rows]
    if created:
        since = dt.datetime.fromtimestamp(min(created), dt.UTC).strftime("%Y-%m-%d")
        out.print(f"{len(rows)} channel(s), the oldest since {since}", highlight=False)


@channel_app.command("enable")
def channel_enable(
    name: Annotated[str, typer.Argument(help="The channel")], config: ConfigOption = None
) -> None:
    """Enable a channel (after an admin disabled it, or to skip the health probe's wait)."""
    _show(_with_book(config, lambda book: book.enable(name)))


@channel_app.command("disable")
def channel_disable(
    name: Annotated[str, typer.Argument(help="The channel")],
    reason: Annotated[str, typer.Option(help="Why (shown in lists)")] = "disabled by an admin",
    config: ConfigOption = None,
) -> None:
    """Stop sending new tasks to a channel; its tasks in flight are still tracked there."""

    async def job(book: ChannelBook) -> StoredChannel | None:
        await book.disable(name, reason, by="admin")
        return await book.store.get_channel(name)

    row = _with_book(config, job)
    if row is not None:
        _show(row)


@channel_app.command("probe")
def channel_probe(
    name: Annotated[str, typer.Argument(help="The channel")], config: ConfigOption = None
) -> None:
    """One cheap call with the channel's key; re-enables a channel its health disabled."""
    ok, error = _with_book(config, lambda book: book.probe(name))
    if not ok:
        _say(f"reelgate: probe of {name} failed: {error}")
        raise typer.Exit(1)
    out.print(f"{name}: the upstream answered", markup=False, highlight=False)


@channel_app.command("remove")
def channel_remove(
    name: Annotated[str, typer.Argument(help="The channel")], config: ConfigOption = None
) -> None:
    """Remove a channel (refused while it has unfinished tasks)."""
    _with_book(config, lambda book: book.remove(name))
    out.print(f"removed {name}", markup=False, highlight=False)


def providers_command() -> None:
    """The providers this installation knows (built in and installed plug-ins): what a channel
    of each takes."""
    from reelgate.providers import plugins

    table = Table("provider", "what it is", "secret", "regions", "options", "features")
    for spec in plugins.specs().values():
        features = spec.features
        table.add_row(
            spec.name,
            spec.title,
            spec.credential.description if spec.credential else "none (built in)",
            ", ".join(spec.regions) or "base URL only",
            ", ".join(spec.options.model_fields) or "none",
            f"batch {features.batch_size}, callbacks {features.callbacks}, "
            f"cancel {features.cancel}",
        )
    out.print(table)

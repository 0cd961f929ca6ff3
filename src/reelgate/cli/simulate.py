"""``reelgate simulate NAME``: serve one upstream's wire-level simulator in the foreground, for
tests, demos and benchmarks (the names come from ``reelgate.testing.simulators``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

DEFAULT_KEY = "sim-key"


def simulate(
    name: Annotated[str, typer.Argument(help="Which upstream to simulate (e.g. ark)")],
    port: Annotated[int, typer.Option(help="Listen port")] = 9100,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help=f"Accepted API key (repeatable; default {DEFAULT_KEY})"),
    ] = None,
    queued_seconds: Annotated[
        float | None, typer.Option(help="Seconds a task stays queued (default: the simulator's)")
    ] = None,
    running_seconds: Annotated[
        float | None, typer.Option(help="Seconds a task runs (default: the simulator's)")
    ] = None,
) -> None:
    """Run an upstream simulator; it accepts exactly the --key values given."""
    from reelgate.testing.simulator import run_foreground
    from reelgate.testing.simulators import SimulatorOptions, simulators

    table = simulators()
    entry = table.get(name)
    if entry is None:
        known = ", ".join(sorted(table))
        print(f"reelgate: no simulator '{name}' (known: {known})", file=sys.stderr)
        raise typer.Exit(2)
    keys = tuple(key or [DEFAULT_KEY])
    sim = entry.build(SimulatorOptions(frozenset(keys), queued_seconds, running_seconds))
    base_url = f"http://{host}:{port}{sim.base_path}"
    print(f"{name} simulator on {base_url} (API keys: {', '.join(keys)}); {entry.usage}")
    sys.stdout.flush()
    run_foreground(sim, host, port)

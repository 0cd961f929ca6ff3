"""The ``reelgate`` command line (Typer): serve, worker, token, channel, task, video, simulate."""

from __future__ import annotations

from reelgate.cli.channels import channel_app
from reelgate.cli.main import app

app.add_typer(channel_app, name="channel")


def main() -> None:
    app()


__all__ = ["app", "main"]

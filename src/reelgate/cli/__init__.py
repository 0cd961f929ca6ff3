"""The ``reelgate`` command line (Typer): serve, worker, token, channel, task, video, simulate."""

from __future__ import annotations

from reelgate.cli.channels import channel_app, providers_command
from reelgate.cli.main import app

app.add_typer(channel_app, name="channel")
app.command("providers")(providers_command)


def main() -> None:
    app()


__all__ = ["app", "main"]

"""The ``reelgate`` command line (Typer): serve, worker, token, task."""

from __future__ import annotations

from reelgate.cli.main import app


def main() -> None:
    app()


__all__ = ["app", "main"]

"""Process-wide logging set-up, called once by each entry point (CLI commands, the app factory)."""

from __future__ import annotations

import logging

from reelgate.settings import Settings


def configure(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic narrates every start at INFO; only its warnings matter to an operator.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    # httpx logs every upstream request at INFO: a worker would log one line per look-up.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))

"""Fixtures of the integration tests: a migrated SQLite store in a fresh file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelgate.store.sql import SqlStore, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = await open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    await s.migrate()
    yield s
    await s.close()

"""A fresh PostgreSQL database per test: skipped with a message when none is reachable, required
under ``CI=true``. Point ``REELGATE_TEST_PG`` at an admin URL to use another server."""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest

PG_ADMIN = os.environ.get("REELGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_url(name: str) -> str:
    """The URL of database ``name`` on the ``PG_ADMIN`` server (a ``?host=`` socket kept)."""
    server, _, query = PG_ADMIN.partition("?")
    return server.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


async def _pg_database() -> str:
    """A fresh, empty database for one test; dropped by the fixture afterwards."""
    name = f"reelgate_t_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI and unreachable at {PG_ADMIN}: {exc}")
        pytest.skip(f"no PostgreSQL reachable at {PG_ADMIN} ({exc}); set REELGATE_TEST_PG")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()

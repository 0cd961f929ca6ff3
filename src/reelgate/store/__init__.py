"""Persistence: one Store interface (``base``), one SQL implementation (SQLite, PostgreSQL)."""

from reelgate.store.base import Store
from reelgate.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "Store", "open_store"]

"""Alembic migrations, applied automatically at start-up (see ``reelgate.store.sql.migrate``)."""

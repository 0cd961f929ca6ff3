"""Channel rows: channels from settings and from the admin API, with their health."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from reelgate.core.channels import AdmissionCaps, Channel, StoredChannel
from reelgate.core.errors import Conflict
from reelgate.store.schema import NON_TERMINAL, channels, tasks
from reelgate.store.sql_base import SqlBase

# What defines a channel (settings or admin); the rest is health, kept across restarts.
DEFINITION = (
    "provider",
    "region",
    "base_url",
    "priority",
    "weight",
    "models",
    "options",
    "max_queued",
    "max_in_flight",
    "rpm",
)
HEALTH = (
    "enabled",
    "disabled_by",
    "disabled_reason",
    "cooldown_until",
    "next_probe_at",
    "last_error",
)
WRITABLE = frozenset({*DEFINITION, *HEALTH, "api_key_enc"})


def _row_to_channel(m: RowMapping) -> StoredChannel:
    models = m["models"]
    return StoredChannel(
        Channel(
            name=m["name"],
            provider=m["provider"],
            source=m["source"],
            region=m["region"],
            base_url=m["base_url"],
            priority=m["priority"],
            weight=m["weight"],
            models=tuple(models) if models is not None else None,
            caps=AdmissionCaps(m["max_queued"], m["max_in_flight"], m["rpm"]),
            options=dict(m["options"] or {}),
            enabled=bool(m["enabled"]),
            disabled_by=m["disabled_by"],
            disabled_reason=m["disabled_reason"],
            cooldown_until=m["cooldown_until"],
            next_probe_at=m["next_probe_at"],
            last_error=m["last_error"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        ),
        m["api_key_enc"],
    )


def _definition(c: Channel) -> dict[str, Any]:
    return {
        "provider": c.provider,
        "region": c.region,
        "base_url": c.base_url,
        "priority": c.priority,
        "weight": c.weight,
        "models": list(c.models) if c.models is not None else None,
        "options": dict(c.options) or None,
        "max_queued": c.caps.max_queued,
        "max_in_flight": c.caps.max_in_flight,
        "rpm": c.caps.rpm,
    }


class ChannelRows(SqlBase):
    async def sync_config_channels(self, defined: Sequence[Channel], now: float) -> None:
        async with self._tx() as conn:
            for c in defined:
                found = (
                    await conn.execute(
                        sa.select(channels.c.source).where(channels.c.name == c.name)
                    )
                ).first()
                if found is None:
                    await conn.execute(
                        channels.insert().values(
                            name=c.name,
                            source="config",
                            **_definition(c),
                            created_at=now,
                            updated_at=now,
                        )
                    )
                elif found[0] == "config":
                    await conn.execute(
                        channels.update()
                        .where(channels.c.name == c.name)
                        .values(**_definition(c), updated_at=now)
                    )
                else:
                    raise Conflict(
                        f"channel '{c.name}' from settings has the name of a channel added by an "
                        "admin; rename one of them",
                        code="channel_exists",
                    )

    async def list_channels(self) -> Sequence[StoredChannel]:
        async with self._read() as conn:
            rows = await conn.execute(sa.select(channels).order_by(channels.c.name))
            return [_row_to_channel(r._mapping) for r in rows]

    async def get_channel(self, name: str) -> StoredChannel | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(channels).where(channels.c.name == name))).first()
        return _row_to_channel(row._mapping) if row else None

    async def add_channel(self, channel: Channel, api_key_enc: str, now: float) -> None:
        async with self._tx() as conn:
            taken = (
                await conn.execute(
                    sa.select(channels.c.name).where(channels.c.name == channel.name)
                )
            ).first()
            if taken is not None:
                raise Conflict(f"a channel named '{channel.name}' exists", code="channel_exists")
            await conn.execute(
                channels.insert().values(
                    name=channel.name,
                    source="admin",
                    api_key_enc=api_key_enc,
                    **_definition(channel),
                    enabled=channel.enabled,
                    created_at=now,
                    updated_at=now,
                )
            )

    async def update_channel(self, name: str, now: float, **fields: Any) -> StoredChannel | None:
        unknown = set(fields) - WRITABLE
        if unknown:
            raise ValueError(f"not a channel field: {sorted(unknown)}")
        async with self._tx() as conn:
            result = await conn.execute(
                channels.update().where(channels.c.name == name).values(**fields, updated_at=now)
            )
            if not result.rowcount:
                return None
            row = (await conn.execute(sa.select(channels).where(channels.c.name == name))).first()
        return _row_to_channel(row._mapping) if row else None

    async def delete_channel(self, name: str) -> bool:
        async with self._tx() as conn:
            found = (
                await conn.execute(sa.select(channels.c.provider).where(channels.c.name == name))
            ).first()
            if found is None:
                return False
            busy = (
                await conn.execute(
                    sa.select(sa.func.count()).where(
                        tasks.c.provider == found[0],
                        tasks.c.channel == name,
                        tasks.c.status.in_(NON_TERMINAL),
                    )
                )
            ).scalar_one()
            if busy:
                raise Conflict(
                    f"channel '{name}' still has {busy} unfinished task(s); disable it, and remove "
                    "it once they have ended",
                    code="channel_in_use",
                )
            await conn.execute(channels.delete().where(channels.c.name == name))
            return True

    async def channel_load(self) -> dict[tuple[str, str], dict[str, int]]:
        async with self._read() as conn:
            rows = await conn.execute(
                sa.select(
                    tasks.c.provider,
                    tasks.c.channel,
                    tasks.c.status,
                    (tasks.c.upstream_id.is_(None)).label("unsent"),
                    sa.func.count(),
                )
                .where(tasks.c.status.in_(NON_TERMINAL), tasks.c.channel.is_not(None))
                .group_by(tasks.c.provider, tasks.c.channel, tasks.c.status, "unsent")
            )
            load: dict[tuple[str, str], dict[str, int]] = {}
            for provider, channel, status, unsent, count in rows:
                entry = load.setdefault(
                    (provider, channel), {"waiting": 0, "queued": 0, "running": 0}
                )
                key = "waiting" if unsent else ("queued" if status == "queued" else "running")
                entry[key] += int(count)
            return load

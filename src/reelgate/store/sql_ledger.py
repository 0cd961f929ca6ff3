"""The ledger: every movement of a token's money, append-only; a balance is the sum of its rows.

A pre-charge is written in the transaction that inserts its task, under the per-token lock that
also counts unfinished tasks (PostgreSQL advisory lock; SQLite's single writer), and a closing
entry in the transaction that writes the task's end. Two unique indexes make a second pre-charge
or a second closing entry of one task impossible, whatever workers race or crash.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.core import pricing
from reelgate.core.errors import InvalidRequest, PaymentRequired
from reelgate.core.ids import ApiToken
from reelgate.core.lifecycle import Status, Task
from reelgate.core.pricing import Balance, Charge
from reelgate.store.schema import api_tokens, ledger, task_prices
from reelgate.store.sql_base import SqlBase

# The largest balance a quota may be set to or granted at once.
MAX_AMOUNT = 10**15
_ENTRY_COLS = (
    ledger.c.id,
    ledger.c.owner_id,
    ledger.c.task_id,
    ledger.c.kind,
    ledger.c.amount,
    ledger.c.created_at,
    ledger.c.note,
    ledger.c.unit,
    ledger.c.unit_price,
    ledger.c.quantity,
)


async def lock_owner(conn: AsyncConnection, owner_id: str) -> None:
    """Serialize a token's creates and quota changes (SQLite: BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
            {"k": f"reelgate:owner:{owner_id}"},
        )


async def owner_balance(conn: AsyncConnection, owner_id: str) -> Balance:
    limited = (
        await conn.execute(sa.select(api_tokens.c.quota_limited).where(api_tokens.c.id == owner_id))
    ).scalar_one_or_none()
    total = (
        await conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(
                ledger.c.owner_id == owner_id
            )
        )
    ).scalar_one()
    return Balance(int(total), bool(limited))


async def precharge(conn: AsyncConnection, task: Task, charge: Charge) -> None:
    """Take ``charge`` for ``task`` (the caller holds the token's lock); ``PaymentRequired``
    when the token has a quota its balance does not cover."""
    balance = await owner_balance(conn, task.owner_id)
    if balance.limited and balance.amount < charge.amount:
        raise PaymentRequired(
            f"this request is estimated to cost {charge.amount}; the token's balance is "
            f"{balance.amount} (ask the operator for more quota)"
        )
    await conn.execute(
        ledger.insert().values(
            owner_id=task.owner_id,
            task_id=task.id,
            kind=pricing.PRECHARGE,
            amount=-charge.amount,
            created_at=task.created_at,
            note=task.model,
            unit=charge.rule.unit,
            unit_price=charge.rule.price,
            quantity=charge.quantity,
        )
    )
    if charge.offers:
        await conn.execute(
            task_prices.insert(),
            [
                {
                    "task_id": task.id,
                    "provider": o.provider,
                    "unit": o.rule.unit,
                    "unit_price": o.rule.price,
                    "quantity": o.quantity,
                    "amount": o.amount,
                }
                for o in charge.offers
            ],
        )


async def settle_task(conn: AsyncConnection, task: Task, now: float) -> None:
    """Close a finished task's pre-charge: settle a success to its usage, refund a failure. A
    task without a pre-charge (a free model, or created before billing) is left alone; a task
    already closed stays as it is (the unique index turns a second attempt into nothing). A
    task priced per provider settles on the price of the provider that served it."""
    held = (
        await conn.execute(
            sa.select(ledger.c.amount, ledger.c.unit, ledger.c.unit_price).where(
                ledger.c.task_id == task.id, ledger.c.kind == pricing.PRECHARGE
            )
        )
    ).first()
    if held is None:
        return
    served = (
        await conn.execute(
            sa.select(
                task_prices.c.unit,
                task_prices.c.unit_price,
                task_prices.c.quantity,
                task_prices.c.amount,
            ).where(task_prices.c.task_id == task.id, task_prices.c.provider == task.provider)
        )
    ).first()
    unit, unit_price = (served.unit, served.unit_price) if served else (held.unit, held.unit_price)
    closing = pricing.close(
        unit,
        int(unit_price),
        -int(held.amount),
        succeeded=task.status is Status.SUCCESS,
        usage_tokens=task.usage_tokens,
        usage_seconds=task.usage_seconds,
        estimate=(int(served.amount), int(served.quantity)) if served else None,
    )
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        insert(ledger)
        .values(
            owner_id=task.owner_id,
            task_id=task.id,
            kind=closing.kind,
            amount=closing.amount,
            created_at=now,
            note=task.error_code or task.status.value,
            unit=unit,
            unit_price=unit_price,
            quantity=closing.quantity,
        )
        .on_conflict_do_nothing()
    )


def _amount(value: int, param: str, *, low: int) -> int:
    if not low <= value <= MAX_AMOUNT:
        raise InvalidRequest(
            f"{param} must be an integer from {low} to {MAX_AMOUNT}",
            code="invalid_parameter",
            param=param,
        )
    return value


class LedgerQueries(SqlBase):
    async def _one_token(self, conn: AsyncConnection, ref: str) -> ApiToken | None:
        raise NotImplementedError  # SqlStore's token look-up (by id or visible prefix)

    async def balance(self, owner_id: str) -> Balance:
        async with self._read() as conn:
            return await owner_balance(conn, owner_id)

    async def change_quota(
        self,
        ref: str,
        now: float,
        *,
        grant: int | None = None,
        set_to: int | None = None,
        limited: bool | None = None,
        note: str = "",
    ) -> tuple[ApiToken, Balance] | None:
        """Grant an amount, or adjust the balance to ``set_to``, and/or switch enforcement
        (``limited``); a grant or a set turns enforcement on unless ``limited`` says otherwise.
        ``None`` when no single token matches ``ref``."""
        if grant is not None:
            _amount(grant, "grant", low=-MAX_AMOUNT)
        if set_to is not None:
            _amount(set_to, "set", low=-MAX_AMOUNT)
        async with self._tx() as conn:
            token = await self._one_token(conn, ref)
            if token is None:
                return None
            await lock_owner(conn, token.id)
            entries: list[tuple[str, int]] = []
            if grant is not None:
                entries.append((pricing.GRANT, grant))
            if set_to is not None:
                current = (await owner_balance(conn, token.id)).amount + sum(a for _, a in entries)
                entries.append((pricing.ADJUST, set_to - current))
            for kind, amount in entries:
                await conn.execute(
                    ledger.insert().values(
                        owner_id=token.id, kind=kind, amount=amount, created_at=now, note=note
                    )
                )
            if limited is None and entries:
                limited = True
            if limited is not None:
                await conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.id == token.id)
                    .values(quota_limited=limited)
                )
            token = await self._one_token(conn, token.id)
            assert token is not None
            return token, await owner_balance(conn, token.id)

    async def ledger_entries(
        self, owner_id: str | None, *, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Ledger rows, newest first (one token's, or every token's with ``None``); ``before``
        is the id of the last row of the previous page."""
        query = sa.select(*_ENTRY_COLS)
        if owner_id is not None:
            query = query.where(ledger.c.owner_id == owner_id)
        if before is not None:
            query = query.where(ledger.c.id < before)
        query = query.order_by(ledger.c.id.desc()).limit(limit)
        async with self._read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

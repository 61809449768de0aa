"""Helpers shared by the ledger tests (the database fixtures themselves live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from trueup.ledger import Ledger

T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def balances(ledger: Ledger, item: str) -> dict[tuple[str, str], Decimal]:
    """Non-zero cached balances of `item` by (location, lot), read straight from the table."""
    with ledger.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT location, lot, quantity FROM ledger_balances WHERE item = :item"), {"item": item}
        )
        scale = Decimal(10) ** 6 if ledger.engine.dialect.name == "sqlite" else Decimal(1)
        return {(loc, lot): Decimal(q) / scale for loc, lot, q in rows if q != 0}


def count(ledger: Ledger, table: str) -> int:
    with ledger.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()

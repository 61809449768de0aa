"""Reading the ledger: balances (now or as of any time), lot history, valuation, transactions.

`balance()` without `as_of` sums the cached balance rows; with `as_of` it
replays the movement log up to that moment instead: each movement counts +q at
its destination and −q at its source,

    SELECT SUM(q) FROM (SELECT to_location AS location, to_lot AS lot, quantity AS q ...
                        UNION ALL
                        SELECT from_location, from_lot, -quantity ...) WHERE at <= :as_of

so `balance(item, as_of=now)` and `balance(item)` agree exactly, which
`verify()` checks for every (item, location, lot) at once.

Distribution by item: every query here filters on `item`, except lookups by a
bare transaction id or lot name (`find_item`) and `valuation()` over all items,
which fan out to every shard.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.ledger import schema as t
from trueup.ledger.errors import InvalidRequest, NotFound
from trueup.ledger.records import Lot, LotEvent, LotValue, Movement, Transaction

# A `records.Movement`, column for column.
MOVEMENT_COLUMNS = tuple(t.movements.c[name] for name in Movement._fields)


def balance(
    connection: Connection,
    item: str,
    location: str | None = None,
    *,
    lot: str | None = None,
    as_of: datetime | None = None,
) -> Decimal:
    """On hand of `item` at `location` (all real locations when None), optionally of one lot and as of a time."""
    rows = signed_movements(item, as_of) if as_of is not None else t.balances
    total = sa.select(t.total(rows.c.quantity)).where(rows.c.item == item)
    if location is not None:
        total = total.where(rows.c.location == location)
    else:
        real = sa.select(t.locations.c.name).where(t.locations.c.virtual == sa.false())
        total = total.where(rows.c.location.in_(real))
    if lot is not None:
        total = total.where(rows.c.lot == lot)
    return connection.execute(total).scalar_one()


def signed_movements(item: str, as_of: datetime) -> sa.Subquery:
    """(item, location, lot, ±quantity) per movement of `item` up to `as_of`: + where it arrives, − where it leaves."""
    m = t.movements
    up_to = (m.c.item == item, m.c.at <= as_of)
    arrivals = sa.select(m.c.item, m.c.to_location.label("location"), m.c.to_lot.label("lot"), m.c.quantity)
    departures = sa.select(
        m.c.item, m.c.from_location.label("location"), m.c.from_lot.label("lot"), (-m.c.quantity).label("quantity")
    )
    return sa.union_all(arrivals.where(*up_to), departures.where(*up_to)).subquery("signed")


def history(connection: Connection, lot: str, item: str) -> list[LotEvent]:
    """Every movement into or out of `lot`, oldest first, with what reverted it."""
    m, tx = t.movements, t.transactions
    undo = tx.alias("undo")
    query = (
        sa.select(
            m.c.transaction_id,
            tx.c.kind,
            m.c.at,
            m.c.quantity,
            m.c.from_location,
            m.c.from_lot,
            m.c.to_location,
            m.c.to_lot,
            tx.c.reverts,
            undo.c.id,
        )
        .join(tx, sa.and_(tx.c.item == m.c.item, tx.c.id == m.c.transaction_id))
        .outerjoin(undo, sa.and_(undo.c.item == m.c.item, undo.c.reverts == m.c.transaction_id))
        .where(m.c.item == item, sa.or_(m.c.from_lot == lot, m.c.to_lot == lot))
        .order_by(m.c.at, m.c.transaction_id, m.c.line)
    )
    return [LotEvent(*row) for row in connection.execute(query)]


def locations(connection: Connection, item: str) -> list[tuple[str, Decimal]]:
    """The real locations holding `item` (or that ever did), with the quantity on hand at each."""
    b = t.balances
    real = sa.select(t.locations.c.name).where(t.locations.c.virtual == sa.false())
    query = (
        sa.select(b.c.location, t.total(b.c.quantity))
        .where(b.c.item == item, b.c.location.in_(real))
        .group_by(b.c.location)
        .order_by(b.c.location)
    )
    return [(location, on_hand) for location, on_hand in connection.execute(query)]


def valuation(connection: Connection, item: str | None = None) -> list[LotValue]:
    """Each lot with stock on hand across real locations, at its unit cost, by item then oldest lot first."""
    b, lots = t.balances, t.lots
    real = sa.select(t.locations.c.name).where(t.locations.c.virtual == sa.false())
    on_hand = t.total(b.c.quantity)
    query = (
        sa.select(b.c.item, b.c.lot, on_hand, lots.c.unit_cost, lots.c.received_at)
        .join(lots, sa.and_(lots.c.item == b.c.item, lots.c.lot == b.c.lot))
        .where(b.c.location.in_(real))
        .group_by(b.c.item, b.c.lot, lots.c.unit_cost, lots.c.received_at, lots.c.created_by, lots.c.position)
        .having(sa.func.sum(b.c.quantity) != 0)
        .order_by(b.c.item, lots.c.received_at, lots.c.created_by, lots.c.position)
    )
    if item is not None:
        query = query.where(b.c.item == item)
    return [
        LotValue(row.item, row.lot, row[2], row.unit_cost, t.plain(row[2] * row.unit_cost), row.received_at)
        for row in connection.execute(query)
    ]


def lot(connection: Connection, name: str, item: str) -> Lot:
    row = connection.execute(sa.select(t.lots).where(t.lots.c.item == item, t.lots.c.lot == name)).first()
    if row is None:
        raise NotFound(f"item {item!r} has no lot {name!r}")
    parents = connection.execute(
        sa.select(t.lot_parents.c.parent)
        .where(t.lot_parents.c.item == item, t.lot_parents.c.lot == name)
        .order_by(t.lot_parents.c.parent)
    ).scalars()
    return Lot(item, name, row.unit_cost, row.received_at, row.created_by, tuple(parents))


def load_transaction(connection: Connection, number: int, *, item: str | None = None) -> Transaction:
    tx = t.transactions
    query = sa.select(tx).where(tx.c.id == number)
    if item is not None:
        query = query.where(tx.c.item == item)
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no transaction {number}")
    m = t.movements
    moves = connection.execute(
        sa.select(*MOVEMENT_COLUMNS).where(m.c.item == row.item, m.c.transaction_id == number).order_by(m.c.line)
    )
    made = connection.execute(
        sa.select(t.lots.c.lot)
        .where(t.lots.c.item == row.item, t.lots.c.created_by == number)
        .order_by(t.lots.c.position)
    ).scalars()
    transaction = Transaction(
        row.id,
        row.item,
        row.kind,
        row.at,
        row.key,
        row.reverts,
        tuple(Movement(*m_) for m_ in moves),
        row.cost,
        tuple(made),
    )
    return transaction._replace(reverted_by=reverted_by(connection, transaction))


def reverted_by(connection: Connection, transaction: Transaction) -> int | None:
    tx = t.transactions
    query = sa.select(tx.c.id).where(tx.c.item == transaction.item, tx.c.reverts == transaction.id)
    return connection.execute(query).scalar()


def find_item(connection: Connection, table: sa.Table, column: str, value: Any, what: str) -> str:
    """The item a bare transaction id, reservation id or lot name belongs to (a fan-out lookup)."""
    items = (
        connection.execute(sa.select(table.c.item).where(table.c[column] == value).distinct().limit(2)).scalars().all()
    )
    if not items:
        raise NotFound(f"no {what} {value!r}")
    if len(items) > 1:
        raise InvalidRequest(f"{what} {value!r} exists for several items ({', '.join(items)}): pass item=")
    return items[0]

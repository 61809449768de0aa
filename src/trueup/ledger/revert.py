"""Reverting a transaction: post its movements backwards, linked to it, never touching it.

The compensating transaction moves every quantity back from where the
original put it to where it took it from, lot for lot, at the same unit cost;
`ledger_transactions.reverts` points at the original (unique per item, so the
database itself refuses a second revert). The original is found by its id,
never by time.

A revert is refused when the stock the original brought in has moved on:

    tx 1  receive  10 of lot L1 into shop
    tx 2  issue     3 of lot L1 from shop to customer
    revert(1) -> RevertBlocked, listing tx 2 line 1

because tx 2 took from (shop, L1), a place tx 1 credited. Movements of
transactions that have themselves been reverted do not block. `force=True`
posts the revert anyway when no balance would go negative (here it would:
shop holds 7 of L1, the revert needs 10).
"""

from __future__ import annotations

import sqlalchemy as sa

from trueup.ledger import schema as t
from trueup.ledger.book import Book
from trueup.ledger.errors import AlreadyReverted, RevertBlocked
from trueup.ledger.posting import Draft, Line
from trueup.ledger.queries import MOVEMENT_COLUMNS, reverted_by
from trueup.ledger.records import Movement, Transaction

_LISTED = 5


def draft(book: Book, original: Transaction, *, force: bool) -> Draft:
    undone_by = reverted_by(book.connection, original)
    if undone_by is not None:
        raise AlreadyReverted(
            f"transaction {original.id} was already reverted by transaction {undone_by}", reverted_by=undone_by
        )
    if original.reverts is not None:
        raise RevertBlocked(
            f"transaction {original.id} is itself the revert of transaction {original.reverts}; "
            "post the original operation again instead"
        )
    blocking = blocking_movements(book, original)
    if blocking and not force:
        listed = "; ".join(
            f"transaction {m.transaction_id} line {m.line}: {t.plain(m.quantity)} of lot {m.from_lot!r} "
            f"from {m.from_location!r} to {m.to_location!r}"
            for m in blocking[:_LISTED]
        )
        more = f" and {len(blocking) - _LISTED} more" if len(blocking) > _LISTED else ""
        raise RevertBlocked(
            f"transaction {original.id} cannot be reverted: its stock has moved on ({listed}{more}); "
            "revert those first, or force it if no balance would go negative",
            blocking=tuple(blocking),
        )
    lines = [
        Line(m.quantity, m.to_location, m.to_lot, m.from_location, m.from_lot, m.unit_cost) for m in original.movements
    ]
    return Draft(lines, reverts=original.id)


def blocking_movements(book: Book, original: Transaction) -> list[Movement]:
    """Later movements, not themselves reverted, taking from a real (location, lot) the original credited."""
    credited = {(m.to_location, m.to_lot) for m in original.movements if not book.place(m.to_location).virtual}
    if not credited:
        return []
    m, tx = t.movements, t.transactions
    undone = sa.select(tx.c.reverts).where(tx.c.item == original.item, tx.c.reverts.is_not(None))
    query = (
        sa.select(*MOVEMENT_COLUMNS)
        .where(
            m.c.item == original.item,
            m.c.transaction_id > original.id,
            sa.or_(*[sa.and_(m.c.from_location == loc, m.c.from_lot == lot) for loc, lot in sorted(credited)]),
            m.c.transaction_id.not_in(undone),
        )
        .order_by(m.c.transaction_id, m.c.line)
    )
    return [Movement(*row) for row in book.connection.execute(query)]

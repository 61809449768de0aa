"""The ledger's plain, immutable records: what its calls return."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class Movement(NamedTuple):
    """`quantity` (> 0) of one item leaving (from_location, from_lot) for (to_location, to_lot)."""

    transaction_id: int
    line: int
    quantity: Decimal
    from_location: str
    from_lot: str
    to_location: str
    to_lot: str
    unit_cost: Decimal  # of the lot it leaves: the cost this movement carries is quantity × unit_cost


class Transaction(NamedTuple):
    """Movements of one item posted together. `cost` is the value they carry, Σ quantity × unit cost
    (for an issue: the cost of the goods); `reverts` names the transaction this one undoes."""

    id: int
    item: str
    kind: str
    at: datetime
    key: str | None
    reverts: int | None
    movements: tuple[Movement, ...]
    cost: Decimal
    lots: tuple[str, ...] = ()  # lots this transaction created, in order
    reverted_by: int | None = None  # the compensating transaction, once reverted


class Reservation(NamedTuple):
    id: int
    item: str
    location: str
    quantity: Decimal
    hold_for: str
    expires_at: datetime | None
    created_at: datetime
    state: str  # open, released, committed (an open one past expires_at holds nothing)
    transaction_id: int | None  # the issue that committed it


class Lot(NamedTuple):
    item: str
    lot: str
    unit_cost: Decimal
    received_at: datetime
    created_by: int  # the transaction that made it: never changes
    parents: tuple[str, ...]  # lots it was cut or combined from


class LotEvent(NamedTuple):
    """One movement touching a lot, as `history()` lists them (oldest first)."""

    transaction_id: int
    kind: str
    at: datetime
    quantity: Decimal
    from_location: str
    from_lot: str
    to_location: str
    to_lot: str
    reverts: int | None
    reverted_by: int | None


class LotValue(NamedTuple):
    """A lot's stock on hand across real locations, at its unit cost."""

    item: str
    lot: str
    quantity: Decimal
    unit_cost: Decimal
    value: Decimal
    received_at: datetime

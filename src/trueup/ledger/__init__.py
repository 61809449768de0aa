"""An append-only stock ledger: balances derived from an immutable movement log, so they cannot drift.

    from trueup.ledger import Ledger
    ledger = Ledger("sqlite:///stock.db")        # creates or upgrades the schema (Alembic)
    ledger.receive("widget", "shop", 10, unit_cost="2.50")
    ledger.issue("widget", "shop", 3).cost        # Decimal('7.5'), FIFO
    ledger.verify().ok                            # True

Modules, one per noun: `schema` (tables, exact types), `migrate` (+ `migrations/`),
`posting` (the one write path: idempotency, locking, guard), `book` (an item's
stock under its lock), `fifo` (lot picking, bundling: pure), `revert`,
`reservations`, `queries`, `verify` (the check engine over the ledger's tables),
`ledger` (the `Ledger` API), `records` and `errors`.
"""

from trueup.ledger.errors import (
    AlreadyReverted,
    IdempotencyConflict,
    InsufficientStock,
    InvalidRequest,
    LedgerError,
    NotFound,
    ReservationClosed,
    RevertBlocked,
)
from trueup.ledger.ledger import ISSUE_REASONS, Ledger, NewLots
from trueup.ledger.records import Lot, LotEvent, LotValue, Movement, Reservation, Transaction

__all__ = [
    "ISSUE_REASONS",
    "AlreadyReverted",
    "IdempotencyConflict",
    "InsufficientStock",
    "InvalidRequest",
    "Ledger",
    "LedgerError",
    "Lot",
    "LotEvent",
    "LotValue",
    "Movement",
    "NewLots",
    "NotFound",
    "Reservation",
    "ReservationClosed",
    "RevertBlocked",
    "Transaction",
]

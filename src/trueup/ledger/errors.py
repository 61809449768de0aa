"""The ledger's errors: one base class, `LedgerError`, under `trueup.errors.TrueupError`.

Refusals (the call was understood, and the ledger said no to protect the books)
also derive from `ConflictError` and make the CLI exit 1; mistakes in the call
itself (an unknown transaction, a negative quantity) exit 2, like any bad
argument.
"""

from __future__ import annotations

from typing import Any

from trueup.errors import ConflictError, NotFoundError, TrueupError, UsageError


class LedgerError(TrueupError):
    """Base class of everything the ledger raises on purpose."""


class InvalidRequest(LedgerError, UsageError):
    """The call itself is wrong: a non-positive quantity, an unknown reason, a virtual location as stock."""


class NotFound(LedgerError, NotFoundError):
    """A transaction, lot, reservation or location that does not exist."""


class InsufficientStock(LedgerError, ConflictError):
    """Posting would leave a negative on-hand or available balance where the location forbids it."""

    def __init__(self, message: str, *, item: str, location: str, short: Any):
        super().__init__(message)
        self.item, self.location, self.short = item, location, short


class AlreadyReverted(LedgerError, ConflictError):
    """The transaction has been reverted before; `reverted_by` is the compensating transaction."""

    def __init__(self, message: str, *, reverted_by: int):
        super().__init__(message)
        self.reverted_by = reverted_by


class RevertBlocked(LedgerError, ConflictError):
    """Stock the transaction brought in has moved on since; `blocking` lists those movements."""

    def __init__(self, message: str, *, blocking: tuple[Any, ...] = ()):
        super().__init__(message)
        self.blocking = blocking


class IdempotencyConflict(LedgerError, ConflictError):
    """An idempotency key was used before for a different request; `differences` says how."""

    def __init__(self, message: str, *, transaction_id: int | None, differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.transaction_id, self.differences = transaction_id, differences


class ReservationClosed(LedgerError, ConflictError):
    """The reservation was released, committed or has expired."""

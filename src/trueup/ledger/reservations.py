"""Reservations: stock held for someone at a location, so that available = on hand − held.

A reservation is open until it is released (the hold ends, no stock moves)
or committed (the held quantity is issued, FIFO, as one transaction). An open
reservation past its `expires_at` holds nothing any more and cannot be
committed; releasing it just closes it. Reservations are not part of the
movement log: their rows change state once (open -> released or committed),
under the item's posting lock like every write of the item.

    on hand 10, reserve 4 for order-7       available 6
    issue 7                                 refused: 7 wanted, 6 available
    commit(order-7's reservation)           on hand 6, available 6
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from trueup.db import Dialect
from trueup.ledger import schema as t
from trueup.ledger.book import Book, insufficient
from trueup.ledger.errors import InvalidRequest, ReservationClosed
from trueup.ledger.posting import lock_item
from trueup.ledger.queries import find_item
from trueup.ledger.records import Reservation, Transaction


def reserve(
    engine: Engine,
    dialect: Dialect,
    item: str,
    location: str,
    quantity: Decimal,
    *,
    hold_for: str,
    expires_at: datetime | None,
) -> Reservation:
    with engine.begin() as connection:
        lock_item(connection, dialect, item)
        book = Book(connection, item, t.utc(None))
        place = book.place(location)
        if place.virtual:
            raise InvalidRequest(f"{location!r} is a virtual location: stock cannot be held there")
        on_hand = book.on_hand(location)
        held = book.held(location)
        if not place.allow_negative and on_hand - held < quantity:
            raise insufficient(item, location, quantity, on_hand, held)
        number = dialect.next_id(connection, t.reservation_ids, t.reservations)
        row = {
            "item": item,
            "id": number,
            "location": location,
            "quantity": quantity,
            "hold_for": hold_for,
            "expires_at": expires_at,
            "created_at": book.now,
            "state": "open",
            "transaction_id": None,
        }
        connection.execute(t.reservations.insert().values(**row))
    return Reservation(**{**row, "quantity": t.plain(quantity)})


def release(engine: Engine, dialect: Dialect, number: int) -> Reservation:
    with engine.begin() as connection:
        reservation = locked(connection, dialect, number)
        open_one(reservation, None)
        close(connection, reservation, "released", None)
    return reservation._replace(state="released")


def locked(connection: Connection, dialect: Dialect, number: int) -> Reservation:
    """Reservation `number`, read after taking its item's posting lock."""
    item = find_item(connection, t.reservations, "id", number, "reservation")
    lock_item(connection, dialect, item)
    return read(connection, item, number)


def open_one(reservation: Reservation, now: datetime | None) -> None:
    """Refuse a reservation that is closed, or (when `now` is given) has expired by then."""
    if reservation.state != "open":
        raise ReservationClosed(f"reservation {reservation.id} was already {reservation.state}")
    if now is not None and reservation.expires_at is not None and reservation.expires_at <= now:
        raise ReservationClosed(
            f"reservation {reservation.id} expired at {reservation.expires_at.isoformat()}; reserve again"
        )


def close(connection: Connection, reservation: Reservation, state: str, transaction: Transaction | None) -> None:
    values: dict[str, Any] = {"state": state, "transaction_id": transaction.id if transaction else None}
    r = t.reservations
    connection.execute(
        r.update().where(r.c.item == reservation.item, r.c.id == reservation.id, r.c.state == "open").values(**values)
    )


def read(connection: Connection, item: str, number: int) -> Reservation:
    row = connection.execute(
        sa.select(t.reservations).where(t.reservations.c.item == item, t.reservations.c.id == number)
    ).one()
    return Reservation(**row._asdict())

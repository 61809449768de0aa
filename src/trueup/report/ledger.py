"""Ledger results for people (Rich tables) and machines (plain dicts for `to_json`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from trueup.ledger.records import LotEvent, LotValue, Reservation, Transaction
from trueup.report.format import literal, number
from trueup.schema import CLOSED, Document, Exact, Timestamp, TypedDict, record

ReservationEntry = record(Reservation, "ReservationEntry")  # what reservation_dict gives
LotEventEntry = record(LotEvent, "LotEventEntry")  # the rows of GET /api/ledger/lots/{lot}/history
LotValueEntry = record(LotValue, "LotValueEntry")  # the rows of GET /api/ledger/valuation


# "from" is a keyword, so this one is spelt as a call; `from` and `to` are [location, lot].
MovementEntry = TypedDict(
    "MovementEntry", {"line": int, "quantity": Exact, "from": list[str], "to": list[str], "unit_cost": Exact}
)
MovementEntry.__pydantic_config__ = CLOSED  # type: ignore[attr-defined]


class TransactionDocument(Document):
    """A posted transaction: what every ledger posting answers (`trueup ledger ... --format json`)."""

    id: int
    item: str
    kind: str
    at: Timestamp
    key: str | None
    reverts: int | None
    reverted_by: int | None
    cost: Exact
    lots: list[str]
    movements: list[MovementEntry]


class BalanceDocument(Document):
    item: str
    location: str | None
    lot: str | None
    as_of: Timestamp | None
    balance: Exact


class AvailableDocument(Document):
    item: str
    location: str
    available: Exact


class PositionEntry(Document):
    location: str
    on_hand: Exact
    reserved: Exact
    available: Exact


def transaction_dict(transaction: Transaction) -> TransactionDocument:
    return {
        "id": transaction.id,
        "item": transaction.item,
        "kind": transaction.kind,
        "at": transaction.at,
        "key": transaction.key,
        "reverts": transaction.reverts,
        "reverted_by": transaction.reverted_by,
        "cost": transaction.cost,
        "lots": list(transaction.lots),
        "movements": [
            {
                "line": m.line,
                "quantity": m.quantity,
                "from": [m.from_location, m.from_lot],
                "to": [m.to_location, m.to_lot],
                "unit_cost": m.unit_cost,
            }
            for m in transaction.movements
        ],
    }


def print_transaction(transaction: Transaction, console: Console) -> None:
    made = f", new lots {', '.join(transaction.lots)}" if transaction.lots else ""
    undoes = f", reverting transaction {transaction.reverts}" if transaction.reverts else ""
    console.print(
        literal(
            f"transaction {transaction.id}: {transaction.kind} {transaction.item}, cost {number(transaction.cost)}"
            f"{made}{undoes}"
        )
    )
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("quantity", "from", "lot", "to", "lot ", "unit cost"):
        table.add_column(column, justify="right" if column in ("quantity", "unit cost") else "left")
    for m in transaction.movements:
        places = [literal(place) for place in (m.from_location, m.from_lot, m.to_location, m.to_lot)]
        table.add_row(number(m.quantity), *places, number(m.unit_cost))
    if transaction.movements:
        console.print(table)


def print_figure(row: dict[str, Any], console: Console) -> None:
    """A balance or available figure alone on a line (the row's last value)."""
    console.print(number(list(row.values())[-1]), highlight=False)


def reservation_dict(reservation: Reservation) -> dict[str, Any]:
    return reservation._asdict()


def balance_dict(
    item: str, location: str | None, lot: str | None, as_of: datetime | None, balance: Decimal
) -> BalanceDocument:
    return {"item": item, "location": location, "lot": lot, "as_of": as_of, "balance": balance}


def available_dict(item: str, location: str, available: Decimal) -> AvailableDocument:
    return {"item": item, "location": location, "available": available}


def position_dict(location: str, on_hand: Decimal, available: Decimal) -> PositionEntry:
    return {"location": location, "on_hand": on_hand, "reserved": on_hand - available, "available": available}


def print_reservation(reservation: Reservation, console: Console) -> None:
    expiry = f", expires {reservation.expires_at.isoformat()}" if reservation.expires_at else ""
    console.print(
        literal(
            f"reservation {reservation.id}: {number(reservation.quantity)} {reservation.item} at "
            f"{reservation.location} for {reservation.hold_for}{expiry} ({reservation.state})"
        )
    )


def print_history(events: list[LotEvent], console: Console) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("transaction", "kind", "at", "quantity", "from", "lot", "to", "lot ", "note"):
        table.add_column(column, justify="right" if column in ("transaction", "quantity") else "left")
    for e in events:
        note = f"reverts {e.reverts}" if e.reverts else (f"reverted by {e.reverted_by}" if e.reverted_by else "")
        places = [literal(place) for place in (e.from_location, e.from_lot, e.to_location, e.to_lot)]
        table.add_row(
            str(e.transaction_id), e.kind, e.at.isoformat(timespec="seconds"), number(e.quantity), *places, note
        )
    console.print(table)


def print_valuation(lots: list[LotValue], console: Console) -> None:
    table = Table(box=box.SIMPLE_HEAD, show_footer=True)
    table.add_column("item", footer="total")
    table.add_column("lot")
    table.add_column("received")
    table.add_column("quantity", justify="right")
    table.add_column("unit cost", justify="right")
    table.add_column("value", justify="right", footer=number(sum(v.value for v in lots)))
    for v in lots:
        table.add_row(
            literal(v.item), literal(v.lot), v.received_at.isoformat(timespec="seconds"), number(v.quantity),
            number(v.unit_cost), number(v.value),
        )  # fmt: skip
    console.print(table)

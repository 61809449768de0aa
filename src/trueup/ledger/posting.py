"""Posting: how every write reaches the ledger, as one database transaction.

    1. idempotency  a key seen before returns the original transaction when the
                    request is the same, and raises IdempotencyConflict naming
                    what differs when it is not
    2. lock         `UPDATE ledger_items SET version = version + 1 WHERE item = ?`
    3. number       the transaction id, taken after the lock, so the ids of one
                    item rise in the order its transactions commit (in the same
                    statement, `RETURNING nextval(…)`, where the database allows)
    4. plan         the operation reads the item's stock through a `Book` and
                    returns a `Draft`: movement lines and the lots they create
    5. guard        no (location, lot) and no location's available figure (on
                    hand − held) may end below zero unless the location allows it
    6. write        transaction, key, lots, lineage, movements, then one upsert
                    per (location, lot) adding the deltas to the cached balances
                    (a new balance row also gets its lot's cost and FIFO order)

Why row locks and not optimistic versions: a posting reads balances (to pick
FIFO lots and check stock) and then writes them, so a concurrent posting of the
same item must not slip in between. Optimistic versions detect that after the
fact and make the loser retry its whole posting; on a hot item (everyone
selling the last units) that is wasted work growing with contention, and a FIFO
issue touching many lot rows would need a version check on each. One lock row
per item serialises exactly the postings that conflict — those of the same
item — with no retries and no deadlocks (a posting takes one item lock, and
nothing it locks afterwards is wanted by a posting of another item), while
postings of different items run in parallel. On SQLite, which has one writer at
a time anyway, the lock is the database's own (BEGIN IMMEDIATE, see
`trueup.db.SQLiteDialect.serialize_writers`). The version column doubles as a
count of the item's transactions: the concurrency tests check it against the
log to prove that no update was lost.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from trueup.db import Dialect
from trueup.ledger import schema as t
from trueup.ledger.book import Book, insufficient
from trueup.ledger.errors import IdempotencyConflict, InvalidRequest
from trueup.ledger.queries import load_transaction
from trueup.ledger.records import Movement, Transaction

log = logging.getLogger(__name__)

_ATTEMPTS = 3


class Line(NamedTuple):
    """A movement still to be numbered."""

    quantity: Decimal
    from_location: str
    from_lot: str
    to_location: str
    to_lot: str
    unit_cost: Decimal


class NewLot(NamedTuple):
    lot: str
    unit_cost: Decimal
    received_at: datetime
    parents: tuple[str, ...] = ()


class Draft(NamedTuple):
    """What an operation wants to post."""

    lines: list[Line]
    new_lots: tuple[NewLot, ...] | list[NewLot] = ()
    reverts: int | None = None
    reservation: int | None = None  # the reservation this posting commits: its hold no longer counts


Plan = Callable[[Book, int], Draft]


class _KeyTaken(Exception):
    """Another posting inserted the same idempotency key first."""


def post(
    engine: Engine,
    dialect: Dialect,
    *,
    item: str,
    kind: str,
    request: dict[str, Any],
    key: str | None,
    at: datetime,
    plan: Plan,
    after: Callable[[Connection, Transaction], None] | None = None,
) -> Transaction:
    """Post what `plan` drafts for `item` as one transaction (see the module docstring).

    `after` runs inside the same database transaction once the movements are written
    (committing a reservation uses it to close the reservation).
    """
    text = canonical(request) if key is not None else ""  # only a keyed posting stores its request
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with engine.begin() as connection:
                if key is not None:
                    original = _replay(connection, key, text)
                    if original is not None:
                        return original
                now = t.utc(None)
                number = lock_and_number(connection, dialect, item)
                book = Book(connection, item, now)
                draft = plan(book, number)
                guard(book, draft)
                transaction = _write(connection, dialect, book, number, kind, key, text, at, draft)
                if after is not None:
                    after(connection, transaction)
                return transaction
        except _KeyTaken:
            log.info("idempotency key %r was taken by a concurrent posting; looking it up", key)
        except DBAPIError as error:
            # InnoDB can still choose a posting as a deadlock victim: its duplicate-key checks on
            # inserts and upserts take next-key locks even under READ COMMITTED. The whole
            # transaction was rolled back, so posting it again is safe (MySQL's manual asks for it).
            if attempt == _ATTEMPTS or not dialect.is_retryable(error):
                raise
            log.info("posting for item %r was rolled back (%s); posting it again", item, error.orig)
    raise AssertionError(f"idempotency key {key!r} kept being taken and released")  # pragma: no cover


_BUMP = t.items.update().where(t.items.c.item == sa.bindparam("the_item")).values(version=t.items.c.version + 1)
_KEY = sa.select(t.keys.c.item, t.keys.c.transaction_id, t.keys.c.request).where(t.keys.c.key == sa.bindparam("key"))
_INSERT = {table.name: table.insert() for table in (t.transactions, t.keys, t.lots, t.lot_parents, t.movements)}


class _Statements(NamedTuple):
    """The dialect's statements of a posting, built once."""

    add_item: sa.Insert  # insert-or-skip of an item row
    add_balances: sa.Insert  # upsert adding deltas to balance rows
    lock_and_number: sa.Update | None  # the lock bump returning a new transaction id, where UPDATE … RETURNING exists


@functools.cache
def _statements(dialect: Dialect) -> _Statements:
    numbered = None
    if dialect.update_returning:
        numbered = _BUMP.returning(dialect.next_id_value(t.transaction_ids, t.transactions))
    return _Statements(dialect.insert_ignore(t.items), _add_balances(dialect), numbered)


def _add_balances(dialect: Dialect) -> sa.Insert:
    """Add a delta to the balance of (item, location, lot); a new row copies the lot's cost and FIFO order.

    The copy is taken in the database (INSERT … SELECT from ledger_lots), so a posting binds four
    values per balance row, as before the copy existed: most rows already exist and ignore it.
    """
    lots, b = t.lots, t.balances
    given = [sa.bindparam(name, type_=b.c[name].type) for name in ("item", "location", "lot", "quantity")]
    copied = (lots.c.unit_cost, lots.c.received_at, lots.c.created_by, lots.c.position)
    source = sa.select(*given, *copied).where(lots.c.item == given[0], lots.c.lot == given[2])
    names = [column.key for column in (*given, *copied)]
    return dialect.upsert_add(b, ["item", "location", "lot"], "quantity", source=(names, source))


def lock_item(connection: Connection, dialect: Dialect, item: str) -> None:
    """Take the item's posting lock (making its row on first use)."""
    if connection.execute(_BUMP, {"the_item": item}).rowcount == 0:
        connection.execute(_statements(dialect).add_item, {"item": item, "version": 0})
        connection.execute(_BUMP, {"the_item": item})


def lock_and_number(connection: Connection, dialect: Dialect, item: str) -> int:
    """Take the item's posting lock, then a new transaction id: one round trip where UPDATE … RETURNING exists.

    The id is still taken after the lock: PostgreSQL computes RETURNING once the row is updated, that
    is after waiting for a concurrent holder of its lock, and SQLite already holds the write lock.
    """
    numbered = _statements(dialect).lock_and_number
    if numbered is not None:
        number = connection.execute(numbered, {"the_item": item}).scalar()
        if number is not None:
            return number
    lock_item(connection, dialect, item)  # no UPDATE … RETURNING, or the item's first posting (no row yet)
    return dialect.next_id(connection, t.transaction_ids, t.transactions)


def guard(book: Book, draft: Draft) -> None:
    """Refuse a draft leaving a lot balance or a location's available figure below zero where forbidden.

    Only what the draft takes from is read (most of it is already known from picking the lots);
    the location's total is summed only when reservations hold stock there, since without them
    non-negative lots cannot add up to a negative location.
    """
    deltas = balance_deltas(draft.lines)
    debited = sorted({location for (location, _), delta in deltas.items() if delta < 0})
    for location in debited:
        if book.place(location).allow_negative:
            continue
        keys = [key for key, delta in deltas.items() if key[0] == location and delta < 0]
        for (_, lot), balance in book.balances_of(keys).items():
            if balance + deltas[(location, lot)] < 0:
                raise insufficient(book.item, location, -deltas[(location, lot)], balance, Decimal(0), lot=lot)
        change = sum((d for (loc, _), d in deltas.items() if loc == location), Decimal(0))
        if change >= 0:  # stock only moved between lots here (a split or merge)
            continue
        held = book.held(location, excluding=draft.reservation)
        if held:
            on_hand = book.on_hand(location)
            if on_hand + change - held < 0:
                raise insufficient(book.item, location, -change, on_hand, held)


def _write(
    connection: Connection,
    dialect: Dialect,
    book: Book,
    number: int,
    kind: str,
    key: str | None,
    request: str,
    at: datetime,
    draft: Draft,
) -> Transaction:
    item = book.item
    moves = tuple(Movement(number, index, *line) for index, line in enumerate(draft.lines, start=1))
    cost = _cost(moves)
    transaction = {"item": item, "id": number, "kind": kind, "at": at, "posted_at": book.now, "key": key}
    # The writes a request can make fail (a taken key, a reused lot id) run one at a time, so that
    # their errors say which; the rest go to the database together (a pipeline, where the driver
    # has one) and are answered in one round trip.
    if key is not None:
        try:  # on a server, waits for a concurrent posting holding the same key, then fails
            connection.execute(
                _INSERT["ledger_keys"], {"key": key, "item": item, "transaction_id": number, "request": request}
            )
        except IntegrityError:
            raise _KeyTaken from None
    if draft.new_lots:
        _insert_lots(connection, item, number, draft.new_lots)
    with dialect.pipeline(connection):
        connection.execute(_INSERT["ledger_transactions"], {**transaction, "reverts": draft.reverts, "cost": cost})
        if moves:
            _move(connection, dialect, item, at, moves)
    return Transaction(
        number, item, kind, at, key, draft.reverts, moves, t.plain(cost), tuple(lot.lot for lot in draft.new_lots)
    )


def _cost(moves: Sequence[Movement]) -> Decimal:
    """What the movements are worth, to the ledger's SCALE (a 0.5 × 0.333333 line is worth 0.166667)."""
    cost = sum((m.quantity * m.unit_cost for m in moves), Decimal(0))
    if abs(cost) >= t.LARGEST:
        raise InvalidRequest(f"the transaction would be worth {cost:,f}; the ledger keeps figures below {t.LARGEST:,}")
    return cost.quantize(Decimal(1).scaleb(-t.SCALE))


def _move(connection: Connection, dialect: Dialect, item: str, at: datetime, moves: Sequence[Movement]) -> None:
    """Append the movements and add their deltas to the balances."""
    connection.execute(_INSERT["ledger_movements"], _rows([{"item": item, "at": at, **m._asdict()} for m in moves]))
    deltas = sorted(balance_deltas(moves).items())
    rows = [{"item": item, "location": loc, "lot": lot, "quantity": delta} for (loc, lot), delta in deltas]
    added = connection.execute(_statements(dialect).add_balances, _rows(rows)).rowcount
    # INSERT … SELECT writes nothing for a lot missing from ledger_lots; lots are made before they
    # move and never deleted, so this only guards that invariant, where the driver counts (not -1,
    # as in a pipeline).
    if dialect.upsert_counts_rows and added >= 0:
        assert added == len(rows), f"{added} of {len(rows)} balance rows written"


def _insert_lots(connection: Connection, item: str, number: int, lots: Sequence[NewLot]) -> None:
    rows = [
        {"item": item, "lot": lot.lot, "unit_cost": lot.unit_cost, "received_at": lot.received_at,
         "created_by": number, "position": position}
        for position, lot in enumerate(lots, start=1)
    ]  # fmt: skip
    try:  # the primary key (item, lot) refuses a reused lot id; on a server the transaction is then done for
        connection.execute(_INSERT["ledger_lots"], rows)
    except IntegrityError:
        names = ", ".join(repr(lot.lot) for lot in lots)
        what = f"a lot named {names}" if len(lots) == 1 else f"one of the lots {names}"
        raise InvalidRequest(f"item {item!r} already has {what}; lot ids are never reused") from None
    parents = [{"item": item, "lot": lot.lot, "parent": p} for lot in lots for p in lot.parents]
    if parents:
        connection.execute(_INSERT["ledger_lot_parents"], parents)


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    """One row as plain parameters: executemany costs extra round trips (a pipeline) on psycopg."""
    return rows[0] if len(rows) == 1 else rows


def balance_deltas(moves: Sequence[Line | Movement]) -> dict[tuple[str, str], Decimal]:
    """(location, lot) -> net change; zero changes are kept so every touched key has a balance row."""
    deltas: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for move in moves:
        deltas[(move.from_location, move.from_lot)] -= move.quantity
        deltas[(move.to_location, move.to_lot)] += move.quantity
    return deltas


def _replay(connection: Connection, key: str, request: str) -> Transaction | None:
    """The transaction first posted under `key` if the request matches; None if the key is new."""
    row = connection.execute(_KEY, {"key": key}).first()
    if row is None:
        return None
    before, now = json.loads(row.request), json.loads(request)
    differences = {
        field: (before.get(field), now.get(field))
        for field in sorted(set(before) | set(now))
        if before.get(field) != now.get(field)
    }
    if differences:
        listed = "; ".join(f"{field}: {old!r} then, {new!r} now" for field, (old, new) in differences.items())
        raise IdempotencyConflict(
            f"idempotency key {key!r} was used for transaction {row.transaction_id} "
            f"with a different request ({listed})",
            transaction_id=row.transaction_id,
            differences=differences,
        )
    return load_transaction(connection, row.transaction_id, item=row.item)


def canonical(request: Mapping[str, Any]) -> str:
    """The request as JSON text with exact decimals and UTC times, for comparing retries."""

    def plainly(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(t.plain(value))
        if isinstance(value, datetime):
            return t.utc(value).isoformat()
        if isinstance(value, Mapping):
            return {str(k): plainly(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plainly(v) for v in value]
        return value

    return json.dumps(plainly(request), sort_keys=True)

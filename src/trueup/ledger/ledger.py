"""`Ledger`: the Python API (PRODUCT.md's Ledger API table), one short method per operation.

Each write method checks its arguments, then hands `trueup.ledger.posting.post`
a plan: a function that, under the item's lock, reads the item's stock and
says which movements to post. Reads go straight to `trueup.ledger.queries`.

    ledger = Ledger("sqlite:///stock.db")
    ledger.receive("pipe-20mm", "warehouse", 500, unit_cost="0.40", lot="ROLL-1")
    pieces = ledger.split("ROLL-1", [100, 100, 50])          # ['L2-1', 'L2-2', 'L2-3']
    sale = ledger.issue("pipe-20mm", "warehouse", 120)          # FIFO: ROLL-1 first
    sale.cost                                                    # Decimal('48')
    ledger.revert(sale.id)
    ledger.balance("pipe-20mm")                                  # Decimal('500')
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from trueup.db import describe, dialect_for, driver_message, open_engine, redact
from trueup.errors import DatabaseError
from trueup.ledger import migrate, queries, reservations, revert, verify
from trueup.ledger import schema as t
from trueup.ledger.book import Book
from trueup.ledger.errors import InsufficientStock, InvalidRequest, NotFound
from trueup.ledger.fifo import Pick, bundle
from trueup.ledger.posting import Draft, Line, NewLot, Plan, post
from trueup.ledger.records import Lot, LotEvent, LotValue, Reservation, Transaction
from trueup.reconcile.check import CheckReport

F = TypeVar("F", bound=Callable[..., Any])

ISSUE_REASONS = {"sale": "customer", "usage": "consumption", "scrap": "scrap"}
_MAX_NAME = 100


class NewLots(list[str]):
    """The ids of the lots a split or merge made, with the transaction that made them."""

    def __init__(self, transaction: Transaction):
        super().__init__(transaction.lots)
        self.transaction = transaction


def _database_errors(method: F) -> F:
    """A driver error becomes one DatabaseError line naming the database, never its password."""

    @functools.wraps(method)
    def wrapper(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as error:
            raise DatabaseError(
                f"ledger at {describe(self.engine.url)}: {driver_message(error, self.engine.url)}"
            ) from None

    return wrapper  # type: ignore[return-value]


class Ledger:
    """An append-only stock ledger in the database at `url`, its schema created or upgraded on opening."""

    def __init__(self, url: str, *, pool_size: int | None = None):
        engine = open_engine(url, pool_size=pool_size)  # pool_size: connections kept for concurrent callers
        self.dialect = dialect_for(engine)
        # Postings go through `engine` (BEGIN IMMEDIATE on SQLite, READ COMMITTED on servers); reads
        # through `reader`, so a long read such as verify() does not hold SQLite's write lock.
        self.engine = self.dialect.serialize_writers(engine)
        self.reader = engine
        try:
            migrate.upgrade(self.engine)
        except DBAPIError as error:
            self.engine.dispose()
            raise DatabaseError(
                f"cannot open the ledger at {redact(url)}: {driver_message(error, engine.url)}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- locations ---------------------------------------------------------------------------

    @_database_errors
    def add_location(self, name: str, *, allow_negative: bool = False) -> None:
        """A real location (made on first receipt anyway); `allow_negative` lets its stock go below zero."""
        _name(name, "location")
        with self.engine.begin() as connection:
            place = connection.execute(sa.select(t.locations).where(t.locations.c.name == name)).first()
            if place is not None and place.virtual:
                raise InvalidRequest(f"{name!r} is a virtual location")
            if place is None:
                connection.execute(t.locations.insert().values(name=name, virtual=False, allow_negative=allow_negative))
            else:
                connection.execute(
                    t.locations.update().where(t.locations.c.name == name).values(allow_negative=allow_negative)
                )

    # -- postings ----------------------------------------------------------------------------

    @_database_errors
    def receive(
        self,
        item: str,
        location: str,
        qty: Any,
        *,
        unit_cost: Any,
        lot: str | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Transaction:
        """Stock arrives from the supplier into a new lot (named `lot`, or `L<transaction id>`)."""
        qty, unit_cost = _quantity(qty, "qty"), _quantity(unit_cost, "unit_cost", zero=True)
        if lot is not None:
            _name(lot, "lot")
        when = _moment(at, "at")

        def plan(book: Book, number: int) -> Draft:
            _arrive(self, book, location)
            name = lot or f"L{number}"
            return Draft([Line(qty, "supplier", name, location, name, unit_cost)], [NewLot(name, unit_cost, when)])

        request = {"item": item, "location": location, "qty": qty, "unit_cost": unit_cost, "lot": lot, "at": at}
        return self._post("receive", item, request, key, when, plan)

    @_database_errors
    def transfer(
        self,
        item: str,
        from_location: str,
        to_location: str,
        qty: Any,
        *,
        lots: Sequence[str] | Mapping[str, Any] | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Transaction:
        """Move stock between real locations, oldest lots first (or the named `lots`)."""
        _names(item=item, from_location=from_location, to_location=to_location)
        qty = _quantity(qty, "qty")
        lots = _lots(lots, qty)
        if from_location == to_location:
            raise InvalidRequest(f"transfer from {from_location!r} to itself")

        def plan(book: Book, number: int) -> Draft:
            _real(book, from_location)
            _arrive(self, book, to_location)
            picks = book.take(from_location, qty, lots)
            return Draft([Line(p.quantity, from_location, p.lot, to_location, p.lot, p.unit_cost) for p in picks])

        request = {"item": item, "from": from_location, "to": to_location, "qty": qty, "lots": lots, "at": at}
        return self._post("transfer", item, request, key, _moment(at, "at"), plan)

    @_database_errors
    def issue(
        self,
        item: str,
        location: str,
        qty: Any,
        *,
        reason: str = "sale",
        lots: Sequence[str] | Mapping[str, Any] | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Transaction:
        """Stock leaves for a sale, usage or scrap, oldest lots first; `.cost` is the cost of the goods."""
        _names(item=item, location=location)
        qty = _quantity(qty, "qty")
        lots = _lots(lots, qty)
        _reason(reason)

        def plan(book: Book, number: int) -> Draft:
            _real(book, location)
            return _issue_draft(book, location, qty, reason, lots)

        request = {"item": item, "location": location, "qty": qty, "reason": reason, "lots": lots, "at": at}
        return self._post("issue", item, request, key, _moment(at, "at"), plan)

    @_database_errors
    def adjust(
        self,
        item: str,
        location: str,
        counted: Any,
        *,
        unit_cost: Any = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Transaction:
        """A stocktake: post the difference between `counted` and on hand to the adjustment location.

        A loss leaves the oldest lots first; a gain arrives as a new lot at `unit_cost`
        (default: the unit cost of the item's newest lot, else 0).
        """
        _names(item=item, location=location)
        counted = _quantity(counted, "counted", zero=True)
        cost = None if unit_cost is None else _quantity(unit_cost, "unit_cost", zero=True)
        when = _moment(at, "at")

        def plan(book: Book, number: int) -> Draft:
            _arrive(self, book, location)
            on_hand = book.on_hand(location)
            if counted < on_hand:
                picks = book.take(location, on_hand - counted)
                return Draft([Line(p.quantity, location, p.lot, "adjustment", p.lot, p.unit_cost) for p in picks])
            if counted == on_hand:
                return Draft([])
            name, price = f"L{number}", cost if cost is not None else book.latest_cost()
            line = Line(counted - on_hand, "adjustment", name, location, name, price)
            return Draft([line], [NewLot(name, price, when)])

        request = {"item": item, "location": location, "counted": counted, "unit_cost": cost, "at": at}
        return self._post("adjust", item, request, key, when, plan)

    @_database_errors
    def split(
        self,
        lot: str,
        pieces: Sequence[Any],
        *,
        location: str | None = None,
        item: str | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> NewLots:
        """Cut pieces off a lot (a 500 m roll into lengths); the rest stays in the lot. Returns the new lots."""
        sizes = [_quantity(p, "piece") for p in pieces]
        if not sizes:
            raise InvalidRequest("split needs at least one piece")
        item = item or self._item_of_lot(lot)

        def plan(book: Book, number: int) -> Draft:
            source, where = book.lot(lot), self._where(book, [lot], location)
            book.take(where, sum(sizes), {lot: sum(sizes)})
            names = [f"L{number}-{i}" for i in range(1, len(sizes) + 1)]
            lines = [Line(size, where, lot, where, n, source.unit_cost) for size, n in zip(sizes, names, strict=True)]
            return Draft(lines, [NewLot(n, source.unit_cost, source.received_at, (lot,)) for n in names])

        request = {"item": item, "lot": lot, "pieces": sizes, "location": location, "at": at}
        return NewLots(self._post("split", item, request, key, _moment(at, "at"), plan))

    @_database_errors
    def merge(
        self,
        lots: Sequence[str],
        bundle_size: Any,
        bundles: int,
        *,
        location: str | None = None,
        item: str | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> NewLots:
        """Combine all of `lots` at a location into `bundles` lots of `bundle_size` and one remainder lot.

        Each new lot's unit cost is the average of what went into it, rounded to 6 places when it
        does not come out exact; it keeps the oldest receipt time among its parents, for FIFO.
        """
        size = _quantity(bundle_size, "bundle_size")
        if not lots or len(set(lots)) != len(lots):
            raise InvalidRequest("merge needs one or more distinct lots")
        if bundles < 1:
            raise InvalidRequest(f"bundles must be at least 1, not {bundles}")
        item = item or self._item_of_lot(lots[0])

        def plan(book: Book, number: int) -> Draft:
            sources = {name: book.lot(name) for name in lots}
            where = self._where(book, list(lots), location)
            held = {s.lot: s for s in book.named(where, list(lots)) if s.quantity > 0}
            pieces = [Pick(n, held[n].quantity, held[n].unit_cost) for n in lots if n in held]
            total = sum((p.quantity for p in pieces), Decimal(0))
            if total < size * bundles:
                raise InsufficientStock(
                    f"lots {', '.join(lots)} hold {t.plain(total)} of {item!r} at {where!r}: "
                    f"{bundles} bundle(s) of {t.plain(size)} need {t.plain(size * bundles)}",
                    item=item,
                    location=where,
                    short=size * bundles - total,
                )
            lines, made = [], []
            for index, parts in enumerate(bundle(pieces, size, bundles), start=1):
                name = f"L{number}-{index}"
                lines += [Line(p.quantity, where, p.lot, where, name, p.unit_cost) for p in parts]
                parents = tuple(dict.fromkeys(p.lot for p in parts))
                received = min(sources[p].received_at for p in parents)
                made.append(NewLot(name, _average_cost(parts), received, parents))
            return Draft(lines, made)

        request = {
            "item": item,
            "lots": list(lots),
            "bundle_size": size,
            "bundles": bundles,
            "location": location,
            "at": at,
        }
        return NewLots(self._post("merge", item, request, key, _moment(at, "at"), plan))

    @_database_errors
    def revert(
        self,
        transaction_id: int,
        *,
        force: bool = False,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Transaction:
        """Post the compensating transaction of `transaction_id` (see `trueup.ledger.revert`)."""
        _id(transaction_id, "transaction_id")
        with self.reader.connect() as connection:
            original = queries.load_transaction(connection, transaction_id)
        request = {"reverts": transaction_id, "force": force, "at": at}
        return self._post(
            "revert",
            original.item,
            request,
            key,
            _moment(at, "at"),
            lambda book, n: revert.draft(book, original, force=force),
        )

    # -- reservations ------------------------------------------------------------------------

    @_database_errors
    def reserve(
        self, item: str, location: str, qty: Any, *, hold_for: str, expires_at: datetime | None = None
    ) -> Reservation:
        """Hold stock at a location for someone (an order, a job) until released, committed or expired."""
        _names(item=item, location=location, hold_for=hold_for)
        qty = _quantity(qty, "qty")
        expires = None if expires_at is None else _moment(expires_at, "expires_at")
        if expires is not None and expires <= t.utc(None):
            raise InvalidRequest(f"expires_at {expires.isoformat()} is already past")
        return reservations.reserve(
            self.engine, self.dialect, item, location, qty, hold_for=hold_for, expires_at=expires
        )

    @_database_errors
    def release(self, reservation_id: int) -> None:
        """End a hold without moving stock."""
        _id(reservation_id, "reservation_id")
        reservations.release(self.engine, self.dialect, reservation_id)

    @_database_errors
    def commit(
        self, reservation_id: int, *, reason: str = "sale", key: str | None = None, at: datetime | None = None
    ) -> Transaction:
        """Issue what a reservation holds (FIFO) and close it; refused once it has expired."""
        _reason(reason)
        held = self.reservation(reservation_id)

        def plan(book: Book, number: int) -> Draft:
            current = reservations.read(book.connection, held.item, reservation_id)
            reservations.open_one(current, book.now)
            return _issue_draft(book, current.location, current.quantity, reason, None)._replace(
                reservation=reservation_id
            )

        def close(connection: sa.Connection, transaction: Transaction) -> None:
            reservations.close(connection, held, "committed", transaction)

        request = {"reservation": reservation_id, "reason": reason, "at": at}
        return self._post("commit", held.item, request, key, _moment(at, "at"), plan, after=close)

    # -- queries -----------------------------------------------------------------------------

    @_database_errors
    def balance(
        self, item: str, location: str | None = None, *, lot: str | None = None, as_of: datetime | None = None
    ) -> Decimal:
        """On hand at `location`, or across all real locations; of one `lot`; `as_of` a past moment."""
        _names(item=item, location=location, lot=lot)
        with self.reader.connect() as connection:
            return queries.balance(
                connection, item, location, lot=lot, as_of=None if as_of is None else _moment(as_of, "as_of")
            )

    @_database_errors
    def available(self, item: str, location: str, *, at: datetime | None = None) -> Decimal:
        """On hand at `location` minus what open, unexpired reservations hold there."""
        _names(item=item, location=location)
        with self.reader.connect() as connection:
            on_hand = queries.balance(connection, item, location)
            return t.plain(on_hand - Book(connection, item, _moment(at, "at")).held(location))

    @_database_errors
    def positions(self, item: str) -> list[tuple[str, Decimal, Decimal]]:
        """Each real location holding `item`: (location, on hand, available = on hand − held)."""
        with self.reader.connect() as connection:
            book = Book(connection, item, t.utc(None))
            return [
                (where, on_hand, t.plain(on_hand - book.held(where)))
                for where, on_hand in queries.locations(connection, item)
            ]

    @_database_errors
    def history(self, lot: str, *, item: str | None = None) -> list[LotEvent]:
        """Every movement into or out of `lot`, oldest first."""
        _names(lot=lot, item=item)
        with self.reader.connect() as connection:
            item = item or queries.find_item(connection, t.lots, "lot", lot, "lot")
            return queries.history(connection, lot, item)

    @_database_errors
    def valuation(self, item: str | None = None) -> list[LotValue]:
        """Each lot's remaining quantity (real locations) × its unit cost."""
        _names(item=item)
        with self.reader.connect() as connection:
            return queries.valuation(connection, item)

    @_database_errors
    def verify(self) -> CheckReport:
        """Rebuild every balance from the movement log and compare; `.ok` when everything adds up."""
        with self.reader.connect() as connection:
            return verify.verify(connection)

    @_database_errors
    def transaction(self, transaction_id: int) -> Transaction:
        _id(transaction_id, "transaction_id")
        with self.reader.connect() as connection:
            return queries.load_transaction(connection, transaction_id)

    @_database_errors
    def lot(self, lot: str, *, item: str | None = None) -> Lot:
        _names(lot=lot, item=item)
        with self.reader.connect() as connection:
            return queries.lot(connection, lot, item or queries.find_item(connection, t.lots, "lot", lot, "lot"))

    @_database_errors
    def reservation(self, reservation_id: int) -> Reservation:
        _id(reservation_id, "reservation_id")
        with self.reader.connect() as connection:
            item = queries.find_item(connection, t.reservations, "id", reservation_id, "reservation")
            return reservations.read(connection, item, reservation_id)

    # -- helpers -----------------------------------------------------------------------------

    def _post(
        self,
        kind: str,
        item: str,
        request: dict[str, Any],
        key: str | None,
        at: datetime,
        plan: Plan,
        after: Callable[[sa.Connection, Transaction], None] | None = None,
    ) -> Transaction:
        _name(item, "item")
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 200):
            raise InvalidRequest("key must be a non-empty string of at most 200 characters")
        return post(
            self.engine,
            self.dialect,
            item=item,
            kind=kind,
            request={"op": kind, **request},
            key=key,
            at=at,
            plan=plan,
            after=after,
        )

    def _item_of_lot(self, lot: str) -> str:
        with self.reader.connect() as connection:
            return queries.find_item(connection, t.lots, "lot", lot, "lot")

    @staticmethod
    def _where(book: Book, lots: list[str], location: str | None) -> str:
        """`location`, or else the one real location holding all of `lots`."""
        if location is not None:
            _real(book, location)
            return location
        b = t.balances
        real = sa.select(t.locations.c.name).where(t.locations.c.virtual == sa.false())
        places = (
            book.connection.execute(
                sa.select(b.c.location)
                .where(b.c.item == book.item, b.c.lot.in_(lots), b.c.quantity > 0, b.c.location.in_(real))
                .distinct()
                .order_by(b.c.location)
            )
            .scalars()
            .all()
        )
        if len(places) != 1:
            found = f"at {', '.join(places)}" if places else "nowhere"
            raise InvalidRequest(f"lot(s) {', '.join(lots)} of {book.item!r} are in stock {found}: pass location=")
        return places[0]


def _issue_draft(
    book: Book, location: str, qty: Decimal, reason: str, lots: Sequence[str] | Mapping[str, Decimal] | None
) -> Draft:
    destination = ISSUE_REASONS[reason]
    picks = book.take(location, qty, lots)
    return Draft([Line(p.quantity, location, p.lot, destination, p.lot, p.unit_cost) for p in picks])


def _arrive(ledger: Ledger, book: Book, location: str) -> None:
    """A real location stock may arrive at, made on first use."""
    _name(location, "location")
    try:
        _real(book, location)
    except NotFound:
        book.connection.execute(
            ledger.dialect.insert_ignore(t.locations).values(name=location, virtual=False, allow_negative=False)
        )
        _real(book, location)


def _real(book: Book, location: str) -> None:
    if book.place(location).virtual:
        raise InvalidRequest(
            f"{location!r} is a virtual location: use receive, issue or adjust to move stock in or out of the books"
        )


def _reason(reason: str) -> None:
    if reason not in ISSUE_REASONS:
        raise InvalidRequest(f"unknown reason {reason!r} (use one of: {', '.join(ISSUE_REASONS)})")


def _average_cost(parts: list[Pick]) -> Decimal:
    quantity = sum((p.quantity for p in parts), Decimal(0))
    value = sum((p.quantity * p.unit_cost for p in parts), Decimal(0))
    return t.plain((value / quantity).quantize(Decimal(1).scaleb(-t.SCALE)))


def _quantity(value: Any, name: str, *, zero: bool = False) -> Decimal:
    """`value` (a Decimal, an int or a decimal string; never a float, which is not exact) as an exact
    Decimal: positive (or ≥ 0 with `zero`), finite, below LARGEST, at most SCALE decimal places."""
    if isinstance(value, float):
        text = repr(value)
        raise InvalidRequest(f"{name} must be exact: pass Decimal({text!r}) or the string {text!r}, not a float")
    number = None
    if isinstance(value, Decimal | int | str) and not isinstance(value, bool):
        with contextlib.suppress(InvalidOperation):
            number = Decimal(value.strip() if isinstance(value, str) else value)
    if number is None or not number.is_finite():
        raise InvalidRequest(f"{name} must be a number, not {value!r}")
    if number < 0 or (number == 0 and not zero):
        raise InvalidRequest(f"{name} must be {'zero or more' if zero else 'more than zero'}, not {value}")
    if number >= t.LARGEST:
        raise InvalidRequest(f"{name} {value} is too large (the ledger keeps figures below {t.LARGEST:,})")
    try:
        exact = number == number.quantize(Decimal(1).scaleb(-t.SCALE), rounding="ROUND_DOWN")
    except InvalidOperation:  # more digits than the decimal context holds
        raise InvalidRequest(f"{name} {value} is too large") from None
    if not exact:
        raise InvalidRequest(f"{name} {value} has more than {t.SCALE} decimal places")
    return t.plain(number)


def _moment(value: Any, name: str) -> datetime:
    """`value` (a datetime, naive ones taken as UTC; None for now) as an aware UTC datetime."""
    if value is not None and not isinstance(value, datetime):
        raise InvalidRequest(f"{name} must be a datetime, not {value!r}")
    try:
        moment = t.utc(value)
    except OverflowError:
        moment = None
    if moment is None or not t.EARLIEST <= moment <= t.LATEST:
        raise InvalidRequest(f"{name} {value} is out of range ({t.EARLIEST:%Y-%m-%d} to {t.LATEST:%Y-%m-%d})")
    return moment


def _lots(lots: Sequence[str] | Mapping[str, Any] | None, qty: Decimal) -> list[str] | dict[str, Decimal] | None:
    """Lot ids to take from (FIFO among them), or exact amounts per lot, which must add up to `qty`."""
    if lots is None:
        return None
    if isinstance(lots, str):
        raise InvalidRequest(f"lots must be a list of lot ids or a mapping of lot id to quantity, not {lots!r}")
    if isinstance(lots, Mapping):
        amounts = {str(lot): _quantity(q, f"lots[{lot!r}]") for lot, q in lots.items()}
        total = sum(amounts.values(), Decimal(0))
        if total != qty:
            raise InvalidRequest(f"the named lots add up to {t.plain(total)}, not {t.plain(qty)}")
        return amounts
    return [str(lot) for lot in lots]


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME:
        raise InvalidRequest(f"{what} must be a non-empty name of at most {_MAX_NAME} characters, not {value!r}")
    return value


def _names(**names: Any) -> None:
    """Each name given (None: not given) is a real name, or InvalidRequest names the argument."""
    for what, value in names.items():
        if value is not None:
            _name(value, what)


def _id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidRequest(f"{what} must be a positive whole number, not {value!r}")
    return value

"""One item's stock as a posting sees it, read under the item's lock and cached for the posting.

Every read here is routed by `item` (one shard on a distributed database). The
statements are built once, with bound parameters, because a posting runs
several of them and building Core expressions costs more than SQLite takes to
run them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.ledger import schema as t
from trueup.ledger.errors import InsufficientStock, NotFound
from trueup.ledger.fifo import LotStock, Pick, fifo, from_named


class Place(NamedTuple):
    name: str
    virtual: bool
    allow_negative: bool


_VIRTUAL = {name: Place(name, True, True) for name in t.VIRTUAL_LOCATIONS}  # seeded once, never changed


# One table, no join: the oldest lots with stock come straight off the partial index
# ix_ledger_balances_fifo (quantity <> 0). The 0 is written into the SQL, not bound, so that a
# prepared statement's generic plan can still use that index.
_STOCK = (
    sa.select(t.balances.c.lot, t.balances.c.quantity, t.balances.c.unit_cost, t.balances.c.received_at)
    .where(
        t.balances.c.item == sa.bindparam("item"),
        t.balances.c.location == sa.bindparam("location"),
        t.balances.c.quantity != sa.literal_column("0"),
    )
    .order_by(*t.FIFO_ORDER)
)
# FIFO reads pages of the oldest lots, growing, and all of them only when those are not enough: most
# issues are covered by the oldest lot or two, and each row read costs decimal conversions.
_PAGES = (4, 64)
_OLDEST = _STOCK.limit(sa.bindparam("page"))
_NAMED = _STOCK.where(t.balances.c.lot.in_(sa.bindparam("lots", expanding=True)))
_ON_HAND = sa.select(t.total(t.balances.c.quantity)).where(
    t.balances.c.item == sa.bindparam("item"), t.balances.c.location == sa.bindparam("location")
)
_BALANCES = sa.select(t.balances.c.location, t.balances.c.lot, t.balances.c.quantity).where(
    t.balances.c.item == sa.bindparam("item"),
    sa.tuple_(t.balances.c.location, t.balances.c.lot).in_(sa.bindparam("keys", expanding=True)),
)
_OPEN_HOLDS = sa.select(t.total(t.reservations.c.quantity)).where(
    t.reservations.c.item == sa.bindparam("item"),
    t.reservations.c.state == "open",
    sa.or_(
        t.reservations.c.expires_at.is_(None), t.reservations.c.expires_at > sa.bindparam("now", type_=t.UTCDateTime)
    ),
)
_HELD = _OPEN_HOLDS.where(
    t.reservations.c.location == sa.bindparam("location"), t.reservations.c.id != sa.bindparam("excluding")
)
# A location and what is held there, in one round trip: a posting that takes stock from a location
# needs both (is it real, may it go negative, how much of it is spoken for).
_PLACE = sa.select(
    t.locations.c.name,
    t.locations.c.virtual,
    t.locations.c.allow_negative,
    _OPEN_HOLDS.where(t.reservations.c.location == t.locations.c.name).scalar_subquery().label("held"),
).where(t.locations.c.name == sa.bindparam("name"))
_LOT = sa.select(t.lots.c.lot, t.lots.c.unit_cost, t.lots.c.received_at).where(
    t.lots.c.item == sa.bindparam("item"), t.lots.c.lot == sa.bindparam("lot")
)
_LATEST_COST = (
    sa.select(t.lots.c.unit_cost)
    .where(t.lots.c.item == sa.bindparam("item"))
    .order_by(t.lots.c.received_at.desc(), t.lots.c.created_by.desc(), t.lots.c.position.desc())
    .limit(1)
)


class Book:
    def __init__(self, connection: Connection, item: str, now: datetime):
        self.connection, self.item, self.now = connection, item, now
        self._places: dict[str, Place] = {}
        self._held: dict[str, Decimal] = {}  # location -> held by all open reservations, read with the place
        self._balances: dict[tuple[str, str], Decimal] = {}  # (location, lot) -> quantity, as read

    def place(self, name: str) -> Place:
        """The location called `name`; NotFound if there is none."""
        if name in _VIRTUAL:
            return _VIRTUAL[name]
        if name not in self._places:
            row = self.connection.execute(_PLACE, {"name": name, "item": self.item, "now": self.now}).first()
            if row is None:
                raise NotFound(f"no location {name!r} (receive into it, or add it with add_location)")
            self._places[name] = Place(row.name, bool(row.virtual), bool(row.allow_negative))
            self._held[name] = row.held
        return self._places[name]

    def oldest(self, location: str, quantity: Decimal) -> list[LotStock]:
        """Lots with stock at `location`, oldest first: enough to cover `quantity`, or all of them.

        An issue reads a page of the oldest lots, not every lot the location holds.
        """
        params = {"item": self.item, "location": location}
        for size in _PAGES:
            page = self._read(location, self.connection.execute(_OLDEST, {**params, "page": size}))
            if len(page) < size or sum((s.quantity for s in page if s.quantity > 0), Decimal(0)) >= quantity:
                return page
        return self._read(location, self.connection.execute(_STOCK, params))

    def named(self, location: str, lots: list[str]) -> list[LotStock]:
        """The non-zero balances of the named lots at `location`, oldest first."""
        rows = self.connection.execute(_NAMED, {"item": self.item, "location": location, "lots": lots})
        return self._read(location, rows)

    def balances_of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
        """Current balances of (location, lot) keys (0 where there is no row), reading only unseen ones."""
        unseen = [key for key in keys if key not in self._balances]
        if unseen:
            self._balances.update(dict.fromkeys(unseen, Decimal(0)))
            rows = self.connection.execute(_BALANCES, {"item": self.item, "keys": unseen})
            self._balances.update({(loc, lot): quantity for loc, lot, quantity in rows})
        return {key: self._balances[key] for key in keys}

    def on_hand(self, location: str) -> Decimal:
        return self.connection.execute(_ON_HAND, {"item": self.item, "location": location}).scalar_one()

    def _read(self, location: str, rows: Iterable[Any]) -> list[LotStock]:
        stock = [LotStock(*row) for row in rows]
        self._balances.update({(location, s.lot): s.quantity for s in stock})
        return stock

    def held(self, location: str, *, excluding: int | None = None) -> Decimal:
        """What open, unexpired reservations hold at `location` (leaving out reservation `excluding`)."""
        if excluding is None and location in self._held:
            return self._held[location]
        params = {"item": self.item, "location": location, "now": self.now, "excluding": excluding or 0}
        return self.connection.execute(_HELD, params).scalar_one()

    def lot(self, name: str) -> LotStock:
        """The item's lot `name` (its quantity left 0: balances are per location); NotFound if none."""
        row = self.connection.execute(_LOT, {"item": self.item, "lot": name}).first()
        if row is None:
            raise NotFound(f"item {self.item!r} has no lot {name!r}")
        return LotStock(row.lot, Decimal(0), row.unit_cost, row.received_at)

    def latest_cost(self) -> Decimal:
        """The unit cost of the item's newest lot (0 when it has none)."""
        return self.connection.execute(_LATEST_COST, {"item": self.item}).scalar() or Decimal(0)

    def take(
        self, location: str, quantity: Decimal, lots: Sequence[str] | Mapping[str, Decimal] | None = None
    ) -> list[Pick]:
        """Picks of `quantity` at `location`: FIFO, or from the named lots.

        Short of stock, a location that allows negative stock takes the rest from its newest lot;
        any other refuses with InsufficientStock.
        """
        place = self.place(location)
        if lots is None:
            stock = self.oldest(location, quantity)
            picks, short = fifo(stock, quantity)
        else:
            stock = self.named(location, list(lots))
            picks, short, unknown = from_named(stock, quantity, lots)
            if unknown:
                raise InsufficientStock(
                    f"no stock of {self.item!r} lot(s) {', '.join(map(repr, unknown))} at {location!r}",
                    item=self.item,
                    location=location,
                    short=quantity,
                )
        if short > 0:
            if not place.allow_negative or not stock:
                raise insufficient(self.item, location, quantity, self.on_hand(location), self.held(location))
            if not isinstance(lots, Mapping):  # named amounts already say where all of it comes from
                newest = stock[-1]
                picks.append(Pick(newest.lot, short, newest.unit_cost))
        return picks


def insufficient(
    item: str, location: str, wanted: Decimal, on_hand: Decimal, held: Decimal, *, lot: str | None = None
) -> InsufficientStock:
    available = on_hand - held
    detail = f"on hand {t.plain(on_hand)}, held {t.plain(held)}" if held else f"on hand {t.plain(on_hand)}"
    what = f"{item!r} lot {lot!r}" if lot is not None else repr(item)
    return InsufficientStock(
        f"not enough {what} at {location!r}: {t.plain(wanted)} wanted, {t.plain(available)} available ({detail})",
        item=item,
        location=location,
        short=wanted - available,
    )

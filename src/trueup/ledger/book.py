"""One item's stock as a posting sees it, read under the item's lock and cached for the posting.

Every read here is routed by `item` (one shard on a distributed database).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.ledger import schema as t
from trueup.ledger.errors import InsufficientStock, NotFound
from trueup.ledger.fifo import LotStock, Pick, fifo, from_named


class Place(NamedTuple):
    name: str
    virtual: bool
    allow_negative: bool


class Book:
    def __init__(self, connection: Connection, item: str, now: datetime):
        self.connection, self.item, self.now = connection, item, now
        self._places: dict[str, Place] = {}
        self._stock: dict[str, list[LotStock]] = {}

    def place(self, name: str) -> Place:
        """The location called `name`; NotFound if there is none."""
        if name not in self._places:
            row = self.connection.execute(
                sa.select(t.locations.c.name, t.locations.c.virtual, t.locations.c.allow_negative).where(
                    t.locations.c.name == name
                )
            ).first()
            if row is None:
                raise NotFound(f"no location {name!r} (receive into it, or add it with add_location)")
            self._places[name] = Place(row.name, bool(row.virtual), bool(row.allow_negative))
        return self._places[name]

    def stock(self, location: str) -> list[LotStock]:
        """Non-zero lot balances of the item at `location`, oldest lot first."""
        if location not in self._stock:
            b, lot = t.balances, t.lots
            query = (
                sa.select(b.c.lot, b.c.quantity, lot.c.unit_cost, lot.c.received_at)
                .join(lot, sa.and_(lot.c.item == b.c.item, lot.c.lot == b.c.lot))
                .where(b.c.item == self.item, b.c.location == location, b.c.quantity != 0)
                .order_by(lot.c.received_at, lot.c.created_by, lot.c.position)
            )
            self._stock[location] = [LotStock(*row) for row in self.connection.execute(query)]
        return self._stock[location]

    def held(self, location: str, *, excluding: int | None = None) -> Decimal:
        """What open, unexpired reservations hold at `location` (leaving out reservation `excluding`)."""
        r = t.reservations
        query = sa.select(t.total(r.c.quantity)).where(
            r.c.item == self.item,
            r.c.location == location,
            r.c.state == "open",
            sa.or_(r.c.expires_at.is_(None), r.c.expires_at > self.now),
        )
        if excluding is not None:
            query = query.where(r.c.id != excluding)
        return self.connection.execute(query).scalar_one()

    def lot(self, name: str) -> LotStock:
        """The item's lot `name` (with quantity 0: use stock() for balances); NotFound if none."""
        row = self.connection.execute(
            sa.select(t.lots.c.lot, t.lots.c.unit_cost, t.lots.c.received_at).where(
                t.lots.c.item == self.item, t.lots.c.lot == name
            )
        ).first()
        if row is None:
            raise NotFound(f"item {self.item!r} has no lot {name!r}")
        return LotStock(row.lot, Decimal(0), row.unit_cost, row.received_at)

    def latest_cost(self) -> Decimal:
        """The unit cost of the item's newest lot (0 when it has none)."""
        lot = t.lots
        query = (
            sa.select(lot.c.unit_cost)
            .where(lot.c.item == self.item)
            .order_by(lot.c.received_at.desc(), lot.c.created_by.desc(), lot.c.position.desc())
            .limit(1)
        )
        return self.connection.execute(query).scalar() or Decimal(0)

    def has_lot(self, name: str) -> bool:
        query = sa.select(t.lots.c.lot).where(t.lots.c.item == self.item, t.lots.c.lot == name)
        return self.connection.execute(query).first() is not None

    def take(
        self, location: str, quantity: Decimal, lots: Sequence[str] | Mapping[str, Decimal] | None = None
    ) -> list[Pick]:
        """Picks of `quantity` at `location`: FIFO, or from the named lots.

        Short of stock, a location that allows negative stock takes the rest from its newest lot;
        any other refuses with InsufficientStock.
        """
        place = self.place(location)
        stock = self.stock(location)
        if lots is None:
            picks, short = fifo(stock, quantity)
        else:
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
                on_hand = sum((s.quantity for s in stock), Decimal(0))
                raise insufficient(self.item, location, quantity, on_hand, self.held(location))
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

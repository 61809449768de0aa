"""The ledger's tables, as SQLAlchemy Core metadata (the migrations create them; queries use them).

    ledger_locations     name, virtual, allow_negative             reference data, small
    ledger_items         item, version                             one row per item: the posting lock
    ledger_transactions  item, id, kind, at, key, reverts, cost     one per posting
    ledger_movements     item, transaction_id, line, quantity,     the append-only log: a quantity
                         from_location/from_lot, to_location/to_lot  leaving one place for another
    ledger_lots          item, lot, unit_cost, received_at, created_by   one per receipt, piece, bundle
    ledger_lot_parents   item, lot, parent                         lineage of cut or combined lots
    ledger_balances      item, location, lot, quantity,            the cached figure, rebuilt by verify,
                         unit_cost, received_at, created_by,       with its lot's cost and FIFO order
                         position
    ledger_reservations  item, id, location, quantity, hold_for, expires_at, state
    ledger_keys          key, item, transaction_id, request        idempotency keys

Every table but the first and the last is keyed by `item` first, so the ledger
can be distributed by item (e.g. Citus: `create_distributed_table(t, 'item')`,
locations as a reference table). A posting touches one item, so it runs on one
shard; queries naming an item (balance, available, valuation(item), lot FIFO,
revert's blocking movements) are routed to one shard. Lookups by a bare id or
lot name (`revert(id)`, `history(lot)`, `split(lot)`) fan out to every shard
unless the caller passes `item=`; `valuation()` and `verify()` over everything
fan out by design. Idempotency keys are unique across items, so `ledger_keys` is
keyed by the key alone: on Citus it is its own distributed table (by key), and
the insert into it joins the posting's transaction across two shards. The
unique indexes on bare ids (`ux_*_id`) would become plain indexes there, since
Citus only enforces uniqueness that includes the distribution column; the ids
come from one sequence, so they stay unique anyway.

Quantities and money are exact: `Exact` is NUMERIC(24, 6) on PostgreSQL and
MySQL, and on SQLite (which has no decimal type and would sum floats) a
BIGINT holding millionths, so `SUM()` stays exact there too. Values with more
than 6 decimal places are refused rather than rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

SCALE = 6
_FACTOR = Decimal(10) ** SCALE
# Every quantity, cost and value is below this: SQLite's 64-bit integer of millionths holds 9.2e12.
LARGEST = Decimal(10) ** 12
# What every database's datetime type holds (MySQL's DATETIME starts in the year 1000).
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def plain(value: Decimal) -> Decimal:
    """`10.000000` -> `10`, `2.500000` -> `2.5`: the same number without trailing zeros or exponents."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


class Exact(sa.TypeDecorator[Decimal]):
    """An exact decimal with SCALE places: NUMERIC where the database has it, scaled BIGINT on SQLite."""

    impl = sa.Numeric(24, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(24, SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        scaled = value * _FACTOR
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {SCALE} decimal places")
        return int(scaled) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return plain(Decimal(int(value)) / _FACTOR)
        return plain(Decimal(value))


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A moment, stored as naive UTC with microseconds and returned as an aware UTC datetime."""

    impl = sa.DateTime()
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def total(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Decimal]:
    """SUM(column), 0 over no rows, read back as an exact Decimal (scaled back on SQLite)."""
    return sa.type_coerce(sa.func.coalesce(sa.func.sum(column), 0), Exact)


def utc(moment: datetime | None) -> datetime:
    """`moment` as an aware UTC datetime (naive ones are taken as UTC); now when None."""
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Name = sa.String(100)
Id = sa.BigInteger()

metadata = sa.MetaData()

locations = sa.Table(
    "ledger_locations",
    metadata,
    sa.Column("name", Name, primary_key=True),
    sa.Column("virtual", sa.Boolean, nullable=False),
    sa.Column("allow_negative", sa.Boolean, nullable=False),
)
VIRTUAL_LOCATIONS = ("supplier", "customer", "consumption", "scrap", "adjustment")

items = sa.Table(
    "ledger_items",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("version", Id, nullable=False),  # transactions posted for the item
)

transaction_ids = sa.Sequence("ledger_transaction_ids")
transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("posted_at", UTCDateTime, nullable=False),
    sa.Column("key", sa.String(200)),
    sa.Column("reverts", Id),
    sa.Column("cost", Exact, nullable=False),
    sa.Index("ux_ledger_transactions_id", "id", unique=True),
    # At most one compensating transaction per original, enforced by the database itself.
    sa.UniqueConstraint("item", "reverts", name="uq_ledger_transactions_reverts"),
)

movements = sa.Table(
    "ledger_movements",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("transaction_id", Id, primary_key=True, autoincrement=False),
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("from_location", Name, nullable=False),
    sa.Column("from_lot", Name, nullable=False),
    sa.Column("to_location", Name, nullable=False),
    sa.Column("to_lot", Name, nullable=False),
    sa.Column("unit_cost", Exact, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.CheckConstraint("quantity > 0", name="ck_ledger_movements_positive"),
    sa.Index("ix_ledger_movements_from", "item", "from_lot", "from_location"),
    sa.Index("ix_ledger_movements_to", "item", "to_lot", "to_location"),
    sa.Index("ix_ledger_movements_at", "item", "at"),
)

lots = sa.Table(
    "ledger_lots",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("lot", Name, primary_key=True),
    sa.Column("unit_cost", Exact, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("created_by", Id, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),  # order among the lots of created_by
    sa.Index("ix_ledger_lots_lot", "lot"),
)

lot_parents = sa.Table(
    "ledger_lot_parents",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("lot", Name, primary_key=True),
    sa.Column("parent", Name, primary_key=True),
)

balances = sa.Table(
    "ledger_balances",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("location", Name, primary_key=True),
    sa.Column("lot", Name, primary_key=True),
    sa.Column("quantity", Exact, nullable=False),
    # The lot's unit cost and FIFO order, copied from ledger_lots (which never changes) so that
    # FIFO reads the oldest lots with stock straight off an index (migration 0002).
    sa.Column("unit_cost", Exact, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("created_by", Id, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index(
        "ix_ledger_balances_fifo",
        "item",
        "location",
        "received_at",
        "created_by",
        "position",
        postgresql_where=sa.text("quantity <> 0"),
        sqlite_where=sa.text("quantity <> 0"),
    ),
)
FIFO_ORDER = (balances.c.received_at, balances.c.created_by, balances.c.position)

reservation_ids = sa.Sequence("ledger_reservation_ids")
reservations = sa.Table(
    "ledger_reservations",
    metadata,
    sa.Column("item", Name, primary_key=True),
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("location", Name, nullable=False),
    sa.Column("quantity", Exact, nullable=False),
    sa.Column("hold_for", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("transaction_id", Id),
    sa.Index("ux_ledger_reservations_id", "id", unique=True),
)

keys = sa.Table(
    "ledger_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("item", Name, nullable=False),
    sa.Column("transaction_id", Id, nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # the call as JSON, to tell a retry from a conflict
)

"""Small datasets of the four incident shapes, with their drift worked out by hand.

Each `load_*` fills a fresh database and returns the drift a correct engine
must find, keyed by plain key (see `plain`): {key: (recorded, expected, delta)}.
The arithmetic is in the comments beside the rows.
"""

from __future__ import annotations

import tomllib
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tests.databases import Database
from trueup.config import Config, parse_config
from trueup.examples import batches, pieces, storefront, usage_logs

PAST = datetime(2025, 3, 1, 12, 0)
FAR_FUTURE = datetime(2999, 1, 1)
Drift = dict[tuple[Any, ...], tuple[int, int, int]]


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n, version=4)


def plain(key: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    """A key with UUIDs as hex: PostgreSQL returns UUID objects, MariaDB dashed text, SQLite bare hex."""
    return tuple(uuid.UUID(str(k)).hex if isinstance(k, uuid.UUID) or _dashed_uuid(k) else k for k in key)


def _dashed_uuid(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 36 and value.count("-") == 4


def config_for(db: Database, shape: Any, **recorded_overrides: Any) -> Config:
    data = tomllib.loads(f'[database]\nurl = "{db.url}"\n' + shape.CONFIG)
    data["rules"][0]["recorded"].update(recorded_overrides)
    return parse_config(data)


def dump(db: Database, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, in a stable order: for before/after comparisons."""
    with db.engine.connect() as connection:
        columns = [c["name"] for c in sa.inspect(connection).get_columns(table)]
        query = (
            sa.select(*[sa.column(c) for c in columns]).select_from(sa.table(table)).order_by(*map(sa.column, columns))
        )
        return [tuple(row) for row in connection.execute(query)]


A, B, C, D, GONE = uid(1), uid(2), uid(3), uid(4), uid(5)


def load_usage_logs(db: Database) -> Drift:
    db.create(usage_logs.metadata)
    db.insert(
        usage_logs.inventory_items,
        [
            {"id": A, "child_id": 1, "quantity_total": 100, "quantity_remaining": 100, "cost_per_unit": "0.25"},
            {"id": B, "child_id": 1, "quantity_total": 50, "quantity_remaining": 38, "cost_per_unit": "0.30"},
            {"id": C, "child_id": 2, "quantity_total": 20, "quantity_remaining": 20, "cost_per_unit": "0.50"},
            {"id": D, "child_id": 2, "quantity_total": 30, "quantity_remaining": 30, "cost_per_unit": "1.00"},
        ],
    )

    def log(item, qty, kind="diaper_change", deleted=False, at=PAST):
        return {
            "inventory_item_id": item,
            "usage_type": kind,
            "quantity_used": qty,
            "is_deleted": deleted,
            "logged_at": at,
        }

    db.insert(
        usage_logs.usage_logs,
        [
            log(A, 10), log(A, 5, deleted=True), log(A, 7, kind="wipes"),  # A: 100 - 10 = 90, recorded 100
            log(B, 12),  # B: 50 - 12 = 38, correct
            log(C, 15), log(C, 10),  # C: 20 - 25 = -5: the opening figure was wrong
            log(D, 3, at=FAR_FUTURE),  # D: 30 - 3 = 27, and the log is future-dated
            log(GONE, 4),  # an item that no longer exists
            log(None, 2), log(None, 1),  # the app lost the item
        ],
    )  # fmt: skip
    return {(A.hex,): (100, 90, -10), (C.hex,): (20, -5, -25), (D.hex,): (30, 27, -3)}


def load_storefront(db: Database) -> Drift:
    db.create(storefront.metadata)
    db.insert(storefront.product, [{"id": 10, "name": "10mm Metal Cable"}, {"id": 11, "name": "Hose"}])
    intake = [{"id": 1, "product_id": 10, "quantity": 10}, {"id": 2, "product_id": 11, "quantity": 12}]
    db.insert(storefront.stock_product, intake)
    db.insert(
        storefront.transfer_request,
        [
            {"id": 1, "storefront_id": 1, "status": "FULFILLED"},
            {"id": 2, "storefront_id": 1, "status": "PENDING"},  # rolled back, but the bug bumped stock
            {"id": 3, "storefront_id": 2, "status": "FULFILLED"},
            {"id": 4, "storefront_id": 2, "status": "CANCELLED"},
        ],
    )
    db.insert(
        storefront.line_item,
        [
            {"id": 1, "request_id": 1, "product_id": 10, "requested_quantity": 5},
            {"id": 2, "request_id": 1, "product_id": 10, "requested_quantity": 5},
            {"id": 3, "request_id": 1, "product_id": 11, "requested_quantity": 3},
            {"id": 4, "request_id": 2, "product_id": 10, "requested_quantity": 100},
            {"id": 5, "request_id": 3, "product_id": 10, "requested_quantity": 2},
            {"id": 6, "request_id": 4, "product_id": 11, "requested_quantity": 7},
        ],
    )
    db.insert(
        storefront.storefront_inventory,
        [
            {"id": 1, "storefront_id": 1, "product_id": 10, "quantity": 284},  # FULFILLED: 5 + 5 = 10
            {"id": 2, "storefront_id": 1, "product_id": 11, "quantity": 3},
            {"id": 3, "storefront_id": 2, "product_id": 10, "quantity": 2},
            {"id": 4, "storefront_id": 2, "product_id": 11, "quantity": 7},  # only a CANCELLED request
        ],
    )
    return {(1, 10): (284, 10, -274), (2, 11): (7, 0, -7)}


def load_batches(db: Database) -> Drift:
    db.create(batches.metadata)
    db.insert(
        batches.warehouse_inventory,
        [
            {"product_code": "A-1", "packs": 10, "pack_price": "2.50"},
            {"product_code": "B-2", "packs": 5, "pack_price": "1.00"},
            {"product_code": "C-3", "packs": 0, "pack_price": "3.00"},
        ],
    )

    def batch(i, code, qty):
        return {"id": i, "product_code": code, "quantity_remaining": qty, "received_at": PAST}

    db.insert(batches.batches, [batch(1, "A-1", 4), batch(2, "A-1", 6), batch(3, "B-2", 3), batch(4, "D-4", 8)])
    return {("B-2",): (5, 3, -2)}  # 4 + 6 = 10, correct; D-4 has no row (a finding, or an insert)


def load_pieces(db: Database) -> Drift:
    db.create(pieces.metadata)
    deleted = datetime(2025, 6, 1)
    db.insert(
        pieces.inventory_stock,
        [
            {"id": 1, "stock_type": "SPARE", "quantity": 3, "deleted_at": None},  # COUNT(*) of its 3 live rows
            {"id": 2, "stock_type": "SPARE", "quantity": 7, "deleted_at": None},
            {"id": 3, "stock_type": "BUNDLE", "quantity": 1, "deleted_at": None},  # not spare stock: out of scope
            {"id": 4, "stock_type": "SPARE", "quantity": 2, "deleted_at": deleted},  # soft-deleted stock
            {"id": 5, "stock_type": "SPARE", "quantity": 4, "deleted_at": None},  # no pieces left at all
        ],
    )

    def piece(i, stock, count, status="IN_STOCK", gone=None):
        return {"id": i, "stock_id": stock, "piece_count": count, "status": status, "deleted_at": gone}

    db.insert(
        pieces.spare_pieces,
        [
            piece(1, 1, 1), piece(2, 1, 5), piece(3, 1, 2, status="SOLD_OUT"), piece(4, 1, 10, gone=deleted),
            piece(5, 2, 7),
            piece(6, 4, 2),  # IN_STOCK piece of a deleted stock row: an orphan
        ],
    )  # fmt: skip
    return {(1,): (3, 6, 3), (5,): (4, 0, -4)}  # 1: 1 + 5 = 6; 5: nothing left


SHAPES = {
    "usage_logs": (usage_logs, load_usage_logs, "inventory_items"),
    "storefront": (storefront, load_storefront, "inventory_storefrontinventory"),
    "batches": (batches, load_batches, "warehouse_inventory"),
    "pieces": (pieces, load_pieces, "inventory_stock"),
}

"""The four incident shapes, on small datasets whose drift was worked out by hand, on every database."""

from __future__ import annotations

import tomllib
import uuid
from datetime import datetime
from decimal import Decimal

import pytest

import trueup
from tests.databases import Database
from trueup.config import parse_config
from trueup.examples import batches, pieces, storefront, usage_logs
from trueup.reconcile.drift import RuleResult

PAST = datetime(2025, 3, 1, 12, 0)
FAR_FUTURE = datetime(2999, 1, 1)


def config_for(db: Database, shape, **rule_overrides):
    data = tomllib.loads(f'[database]\nurl = "{db.url}"\n' + shape.CONFIG)
    for key, value in rule_overrides.items():
        data["rules"][0]["recorded"][key] = value
    return parse_config(data)


def plain(key) -> tuple:
    """A key with UUIDs as hex: PostgreSQL returns UUID objects, MariaDB dashed text, SQLite bare hex."""
    return tuple(uuid.UUID(str(k)).hex if isinstance(k, uuid.UUID) or _dashed_uuid(k) else k for k in key)


def _dashed_uuid(value) -> bool:
    return isinstance(value, str) and len(value) == 36 and value.count("-") == 4


def drift_by_key(result: RuleResult) -> dict:
    return {plain(d.key): (d.recorded, d.expected, d.delta) for d in result.worst}


def findings(result: RuleResult) -> dict[str, int]:
    return {f.kind: f.count for f in result.findings}


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n, version=4)


def test_usage_logs_never_deducted(db: Database) -> None:
    db.create(usage_logs.metadata)
    a, b, c, d, gone = uid(1), uid(2), uid(3), uid(4), uid(5)
    db.insert(
        usage_logs.inventory_items,
        [
            {"id": a, "child_id": 1, "quantity_total": 100, "quantity_remaining": 100, "cost_per_unit": "0.25"},
            {"id": b, "child_id": 1, "quantity_total": 50, "quantity_remaining": 38, "cost_per_unit": "0.30"},
            {"id": c, "child_id": 2, "quantity_total": 20, "quantity_remaining": 20, "cost_per_unit": "0.50"},
            {"id": d, "child_id": 2, "quantity_total": 30, "quantity_remaining": 30, "cost_per_unit": "1.00"},
        ],
    )
    log = lambda item, qty, kind="diaper_change", deleted=False, at=PAST: {  # noqa: E731
        "inventory_item_id": item, "usage_type": kind, "quantity_used": qty, "is_deleted": deleted, "logged_at": at,
    }  # fmt: skip
    db.insert(
        usage_logs.usage_logs,
        [
            log(a, 10), log(a, 5, deleted=True), log(a, 7, kind="wipes"),  # a: 100 - 10 = 90, recorded 100
            log(b, 12),  # b: 50 - 12 = 38, correct
            log(c, 15), log(c, 10),  # c: 20 - 25 = -5: the opening figure was wrong
            log(d, 3, at=FAR_FUTURE),  # d: 30 - 3 = 27, and the log is future-dated
            log(gone, 4),  # an item that no longer exists
            log(None, 2), log(None, 1),  # the app lost the item
        ],
    )  # fmt: skip

    result = trueup.check(config_for(db, usage_logs)).rules[0]

    assert drift_by_key(result) == {
        (a.hex,): (100, 90, -10),
        (c.hex,): (20, -5, -25),
        (d.hex,): (30, 27, -3),
    }
    assert [plain(d.key) for d in result.worst] == [(c.hex,), (a.hex,), (d.hex,)]  # worst first
    assert (result.items, result.drifted, result.abs_drift) == (5, 3, 38)
    assert result.value_impact == Decimal("-18.00")  # -10 × 0.25 - 25 × 0.50 - 3 × 1.00
    assert findings(result) == {"missing_row": 1, "null_key": 2, "future_dated": 1, "negative_expected": 2}
    missing = next(f for f in result.findings if f.kind == "missing_row")
    assert plain(missing.sample[0]["key"]) == (gone.hex,) and missing.sample[0]["expected"] == -4
    assert {(g.group, g.drifted, g.abs_drift) for g in result.groups} == {(1, 1, 10), (2, 2, 28)}


def test_storefront_overcapacity_after_rollback(db: Database) -> None:
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

    report = trueup.check(config_for(db, storefront))
    result = report.rules[0]

    assert drift_by_key(result) == {(1, 10): (284, 10, -274), (2, 11): (7, 0, -7)}
    assert (result.items, result.drifted, result.abs_drift) == (4, 2, 281)
    assert result.findings == ()
    [check] = report.checks
    assert (check.name, check.failing) == ("storefront within warehouse intake", 1)
    sample = check.sample[0]
    assert (sample["product_id"], int(sample["at_storefronts"]), int(sample["intake"])) == (10, 286, 10)
    assert report.exit_code == 1


@pytest.mark.parametrize("insert_missing", [False, True])
def test_batches_vs_inventory_table(db: Database, insert_missing: bool) -> None:
    db.create(batches.metadata)
    db.insert(
        batches.warehouse_inventory,
        [
            {"product_code": "A-1", "packs": 10, "pack_price": "2.50"},
            {"product_code": "B-2", "packs": 5, "pack_price": "1.00"},
            {"product_code": "C-3", "packs": 0, "pack_price": "3.00"},
        ],
    )
    batch = lambda i, code, qty: {"id": i, "product_code": code, "quantity_remaining": qty, "received_at": PAST}  # noqa: E731
    db.insert(batches.batches, [batch(1, "A-1", 4), batch(2, "A-1", 6), batch(3, "B-2", 3), batch(4, "D-4", 8)])

    result = trueup.check(config_for(db, batches, insert_missing=insert_missing)).rules[0]

    if insert_missing:  # D-4 is drift: a row to insert with 8 packs
        assert drift_by_key(result) == {("D-4",): (0, 8, 8), ("B-2",): (5, 3, -2)}
        assert [d.missing for d in result.worst] == [True, False]
        assert findings(result) == {}
    else:  # D-4 is a finding: no row to correct
        assert drift_by_key(result) == {("B-2",): (5, 3, -2)}
        assert findings(result) == {"missing_row": 1}
    assert result.items == 4
    assert result.value_impact == Decimal("-2.00")  # D-4 has no row, so no pack price


def test_pieces_counted_instead_of_summed(db: Database) -> None:
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
    piece = lambda i, stock, count, status="IN_STOCK", gone=None: {  # noqa: E731
        "id": i, "stock_id": stock, "piece_count": count, "status": status, "deleted_at": gone,
    }  # fmt: skip
    db.insert(
        pieces.spare_pieces,
        [
            piece(1, 1, 1), piece(2, 1, 5), piece(3, 1, 2, status="SOLD_OUT"), piece(4, 1, 10, gone=deleted),
            piece(5, 2, 7),
            piece(6, 4, 2),  # IN_STOCK piece of a deleted stock row: an orphan
        ],
    )  # fmt: skip

    result = trueup.check(config_for(db, pieces)).rules[0]

    assert drift_by_key(result) == {(1,): (3, 6, 3), (5,): (4, 0, -4)}
    assert (result.items, result.drifted, result.abs_drift) == (4, 2, 7)
    assert findings(result) == {"missing_row": 1}
    assert result.findings[0].sample[0]["key"] == [4]

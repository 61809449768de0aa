"""The four incident shapes, on small datasets whose drift was worked out by hand, on every database.

On PostgreSQL every case runs twice, with both shapes of the comparison query (`query.comparison`):
the portable UNION ALL + GROUP BY, and the FULL JOIN it uses where the recorded key is unique.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

import trueup
from tests import shapes
from tests.databases import Database, make_database
from tests.shapes import plain
from trueup.reconcile import check
from trueup.reconcile.drift import RuleResult

SHAPED = [("sqlite", "grouped"), ("postgresql", "grouped"), ("postgresql", "joined"), ("mariadb", "grouped")]


@pytest.fixture(params=SHAPED, ids=["-".join(case) for case in SHAPED])
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    """Every database with the portable shape, and PostgreSQL again with the FULL JOIN shape."""
    database, drop = make_database(request.param[0], tmp_path)
    try:
        yield database
    finally:
        drop()


@pytest.fixture(autouse=True)
def comparison_shape(request: pytest.FixtureRequest, db: Database, monkeypatch: pytest.MonkeyPatch):
    """Force the grouped shape, or let a unique recorded key take the joined one (PostgreSQL only)."""
    shape = request.node.callspec.params["db"][1]
    joined, unique = [], check.recorded_key_is_unique

    def chosen(connection, rule) -> bool:
        joined.append(shape == "joined" and unique(connection, rule))
        return joined[-1]

    monkeypatch.setattr(check, "recorded_key_is_unique", chosen)
    yield
    assert any(joined) == (shape == "joined"), "the shape under test was not the one used"


def drift_by_key(result: RuleResult) -> dict:
    return {plain(d.key): (d.recorded, d.expected, d.delta) for d in result.worst}


def findings(result: RuleResult) -> dict[str, int]:
    return {f.kind: f.count for f in result.findings}


def test_usage_logs_never_deducted(db: Database) -> None:
    truth = shapes.load_usage_logs(db)
    result = trueup.check(shapes.config_for(db, shapes.usage_logs)).rules[0]

    assert drift_by_key(result) == truth
    assert [plain(d.key) for d in result.worst] == [(shapes.C.hex,), (shapes.A.hex,), (shapes.D.hex,)]  # worst first
    assert (result.items, result.drifted, result.abs_drift) == (5, 3, 38)
    assert result.value_impact == Decimal("-18.00")  # -10 × 0.25 - 25 × 0.50 - 3 × 1.00
    assert findings(result) == {"missing_row": 1, "null_key": 2, "future_dated": 1, "negative_expected": 2}
    missing = next(f for f in result.findings if f.kind == "missing_row")
    assert plain(missing.sample[0]["key"]) == (shapes.GONE.hex,) and missing.sample[0]["expected"] == -4
    assert {(g.group, g.drifted, g.abs_drift) for g in result.groups} == {(1, 1, 10), (2, 2, 28)}


def test_storefront_overcapacity_after_rollback(db: Database) -> None:
    truth = shapes.load_storefront(db)
    report = trueup.check(shapes.config_for(db, shapes.storefront))
    result = report.rules[0]

    assert drift_by_key(result) == truth
    assert (result.items, result.drifted, result.abs_drift) == (4, 2, 281)
    assert result.findings == ()
    [check] = report.checks
    assert (check.name, check.failing) == ("storefront within warehouse intake", 1)
    sample = check.sample[0]
    assert (sample["product_id"], int(sample["at_storefronts"]), int(sample["intake"])) == (10, 286, 10)
    assert report.exit_code == 1


@pytest.mark.parametrize("insert_missing", [False, True])
def test_batches_vs_inventory_table(db: Database, insert_missing: bool) -> None:
    truth = shapes.load_batches(db)
    result = trueup.check(shapes.config_for(db, shapes.batches, insert_missing=insert_missing)).rules[0]

    if insert_missing:  # D-4 is drift: a row to insert with 8 packs
        assert drift_by_key(result) == {("D-4",): (0, 8, 8), **truth}
        assert [d.missing for d in result.worst] == [True, False]
        assert findings(result) == {}
    else:  # D-4 is a finding: no row to correct
        assert drift_by_key(result) == truth
        assert findings(result) == {"missing_row": 1}
    assert result.items == 4
    assert result.value_impact == Decimal("-2.00")  # D-4 has no row, so no pack price


def test_pieces_counted_instead_of_summed(db: Database) -> None:
    truth = shapes.load_pieces(db)
    result = trueup.check(shapes.config_for(db, shapes.pieces)).rules[0]

    assert drift_by_key(result) == truth
    assert (result.items, result.drifted, result.abs_drift) == (4, 2, 7)
    assert findings(result) == {"missing_row": 1}
    assert result.findings[0].sample[0]["key"] == [4]

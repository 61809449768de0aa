"""Costing engines: hand-computed examples, and properties against a unit-by-unit reference loop."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trueup.cost
from tests.cost_data import random_books, reference_fifo
from trueup.cost import booking
from trueup.cost.columns import resolve
from trueup.cost.compute import _books, as_table
from trueup.cost.engines import allocate
from trueup.cost.findings import CATEGORIES, Policy
from trueup.cost.normalise import normalise

LOTS = [
    {"lot_id": "L1", "sku": "ABC", "received": "2026-01-02", "quantity": "10", "unit_cost": "2.50"},
    {"lot_id": "L2", "sku": "ABC", "received": "2026-01-03", "quantity": "10", "unit_cost": "3.00"},
]
SALES = [
    {"sale_id": "S1", "sku": "ABC", "date": "2026-01-04", "quantity": "4"},
    {"sale_id": "S2", "sku": "ABC", "date": "2026-01-05", "quantity": "8"},
]
LENIENT = Policy.parse(dict.fromkeys(CATEGORIES, "medium"))


def cogs_by_sale(result: trueup.cost.CostResult) -> dict[str, tuple[Decimal, list[tuple[str | None, Decimal]]]]:
    return {line.sale_id: (line.cogs, [(c.lot_id, c.quantity) for c in line.lots]) for line in result.cogs()}


def test_fifo_worked_example() -> None:
    result = trueup.cost.compute(SALES, LOTS)
    assert cogs_by_sale(result) == {
        "S1": (Decimal("10.00"), [("L1", 4)]),
        "S2": (Decimal("21.00"), [("L1", 6), ("L2", 2)]),
    }
    assert [(lot.lot_id, lot.quantity, lot.value) for lot in result.lots_remaining()] == [
        ("L2", Decimal(8), Decimal("24.00"))
    ]
    assert result.summary.cogs == Decimal("31.00") and result.summary.ending_value == Decimal("24.00")
    assert result.exit_code == 0 and result.findings == ()


def test_lifo_worked_example() -> None:
    result = trueup.cost.compute(SALES, LOTS, method="lifo")
    assert cogs_by_sale(result) == {
        "S1": (Decimal("12.00"), [("L2", 4)]),
        "S2": (Decimal("23.00"), [("L2", 6), ("L1", 2)]),
    }
    assert [(lot.lot_id, lot.quantity) for lot in result.lots_remaining()] == [("L1", Decimal(8))]


def test_moving_average_worked_example_keeps_value_exact() -> None:
    lots = [*LOTS, {"lot_id": "L3", "sku": "ABC", "received": "2026-01-03", "quantity": "1", "unit_cost": "1.00"}]
    sales = [*SALES, {"sale_id": "S3", "sku": "ABC", "date": "2026-01-06", "quantity": "9"}]
    result = trueup.cost.compute(sales, lots, method="average")
    # pool 21 units worth 56.00: S1 takes 56.00 × 4/21 = 10.666… -> 10.67; S2 45.33 × 8/17 = 21.331… -> 21.33;
    # S3 empties the pool and takes exactly what is left, 24.00, so nothing is lost to rounding.
    assert {k: v[0] for k, v in cogs_by_sale(result).items()} == {
        "S1": Decimal("10.67"),
        "S2": Decimal("21.33"),
        "S3": Decimal("24.00"),
    }
    assert result.summary.cogs == Decimal("56.00") and list(result.lots_remaining()) == []


def test_return_gives_back_the_units_sold_last() -> None:
    sales = [
        *SALES,
        {"sale_id": "R1", "sku": "ABC", "date": "2026-01-06", "quantity": "-3"},
        {"sale_id": "S3", "sku": "ABC", "date": "2026-01-07", "quantity": "2"},
    ]
    result = trueup.cost.compute(sales, LOTS)
    assert cogs_by_sale(result)["R1"] == (Decimal("-8.50"), [("L1", -1), ("L2", -2)])
    assert cogs_by_sale(result)["S3"] == (Decimal("5.50"), [("L1", 1), ("L2", 1)])


def test_lots_received_at_the_sale_time_come_first() -> None:
    lots = [{"lot_id": "L9", "sku": "ABC", "received": "2026-01-04 10:00", "quantity": "4", "unit_cost": "1"}]
    sales = [{"sale_id": "S1", "sku": "ABC", "date": "2026-01-04 10:00", "quantity": "4"}]
    result = trueup.cost.compute(sales, lots)
    assert result.exit_code == 0 and cogs_by_sale(result)["S1"] == (Decimal(4), [("L9", 4)])


def test_no_float_drift_in_cogs() -> None:
    lots = [{"lot_id": "L1", "sku": "A", "received": "2026-01-01", "quantity": "1000000", "unit_cost": "0.1"}]
    sales = [{"sale_id": f"S{i}", "sku": "A", "date": "2026-01-02", "quantity": "3"} for i in range(1000)]
    result = trueup.cost.compute(sales, lots)
    assert result.summary.cogs == Decimal("300.0")  # 1000 × 3 × 0.1, where floats give 300.00000000000563
    assert result.summary.ending_value == Decimal("99700.0")


def test_more_decimals_keep_exact_products() -> None:
    lots = [{"lot_id": "L1", "sku": "A", "received": "2026-01-01", "quantity": "2.5", "unit_cost": "$1,234.5678"}]
    sales = [{"sale_id": "S1", "sku": "A", "date": "2026-01-02", "quantity": "0.3"}]
    result = trueup.cost.compute(sales, lots)
    assert result.summary.cogs == Decimal("370.37034")
    assert result.summary.ending_value == Decimal("2.2") * Decimal("1234.5678")


day = st.integers(min_value=1, max_value=9).map(lambda d: f"2026-01-0{d}")
sku = st.sampled_from(["A", "B", "C"])
lot_rows = st.lists(
    st.tuples(sku, day, st.integers(1, 12), st.integers(0, 900)).map(
        lambda t: {"sku": t[0], "received": t[1], "quantity": str(t[2]), "unit_cost": f"{t[3] / 100:.2f}"}
    ),
    max_size=12,
)
sale_rows = st.lists(
    st.tuples(sku, day, st.integers(-6, 15).filter(bool)).map(
        lambda t: {"sku": t[0], "date": t[1], "quantity": str(t[2])}
    ),
    max_size=15,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sales=sale_rows, lots=lot_rows)
def test_fifo_matches_the_unit_by_unit_reference(sales: list[dict], lots: list[dict]) -> None:
    sales = [{**row, "sale_id": f"S{i}"} for i, row in enumerate(sales)]
    lots = [{**row, "lot_id": f"L{i}"} for i, row in enumerate(lots)]
    truth = reference_fifo(sales, lots)
    result = trueup.cost.compute(sales, lots, policy=LENIENT) if sales or lots else None
    if result is None:
        return
    lines = {line.sale_id: line for line in result.cogs()}
    assert set(lines) == {s["sale_id"] for s in sales}
    costs = {lot["lot_id"]: Decimal(lot["unit_cost"]) for lot in lots}
    for sale_id, pieces in truth["pieces"].items():
        line = lines[sale_id]
        assert [(c.lot_id, int(c.quantity)) for c in line.lots] == pieces
        assert line.cogs == sum((costs[lot] * q for lot, q in pieces), Decimal(0))
        assert line.uncosted == truth["uncosted"][sale_id]
    assert {lot.lot_id: int(lot.quantity) for lot in result.lots_remaining()} == truth["left"]
    bought = {lot["sku"] for lot in lots}
    expected = {(s, "negative_inventory" if s in bought else "missing_lots") for s in truth["short"]}
    expected |= {(s, "unmatched_return") for s in truth["unmatched"]}
    expected |= {(s, "date_mismatch") for s in truth["late"]}
    stock = {"negative_inventory", "missing_lots", "unmatched_return", "date_mismatch"}
    assert {(f.sku, f.category) for f in result.findings if f.category in stock} == expected


def _allocation(sales: list[dict], lots: list[dict], engine):
    tables = {"sales": as_table(sales, "sales"), "lots": as_table(lots, "lots")}
    maps = {role: resolve(role, t.name, t.headers, {}) for role, t in tables.items()}
    sold, bought, findings = normalise(tables["sales"], tables["lots"], maps)
    assert findings == []
    return engine(_books(sold, bought)[0])


def test_sequential_fifo_walk_agrees_with_the_columnar_engine() -> None:
    sales, lots = random_books(7, skus=20, returns=True)
    walked = _allocation(sales, lots, lambda books: booking.allocate(books, booking.OLDEST_FIRST))
    columnar = _allocation(sales, lots, lambda books: allocate(books, "fifo"))
    for allocation in (walked, columnar):
        assert allocation.sales["short"].sum() == 0 and allocation.sales["unmatched"].sum() == 0

    def by_piece(allocation) -> dict[tuple[int, int], tuple[int, int]]:
        totals: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        for sale, lot, quantity, value in allocation.pieces.select("sale", "lot", "quantity", "value").iter_rows():
            totals[(sale, lot)][0] += quantity
            totals[(sale, lot)][1] += value
        return {key: tuple(v) for key, v in totals.items() if v != [0, 0]}

    assert by_piece(walked) == by_piece(columnar)
    assert walked.remaining.sort("lot").equals(columnar.remaining.sort("lot"))


def test_every_method_conserves_value() -> None:
    sales, lots = random_books(11, skus=15, returns=True)
    purchases = sum(Decimal(lot["quantity"]) * Decimal(lot["unit_cost"]) for lot in lots)
    for method in trueup.cost.METHODS:
        result = trueup.cost.compute(sales, lots, method=method)
        assert result.exit_code == 0, method
        assert result.summary.cogs + result.summary.ending_value == purchases, method
        assert sum(line.cogs for line in result.cogs()) == result.summary.cogs


def test_lifo_takes_the_newest_lot_on_hand_not_a_later_one() -> None:
    lots = [*LOTS, {"lot_id": "L3", "sku": "ABC", "received": "2026-01-09", "quantity": "5", "unit_cost": "9.00"}]
    result = trueup.cost.compute(SALES, lots, method="lifo")
    assert [c.lot_id for c in next(iter(result.cogs())).lots] == ["L2"]
    assert {lot.lot_id: lot.quantity for lot in result.lots_remaining()} == {"L1": 8, "L3": 5}


def test_lifo_return_of_a_back_ordered_sale_goes_back_to_its_lot() -> None:
    """A sale filled late takes a whole lot; a return then gives units back to that lot (once a KeyError)."""
    lots = [{"lot_id": "L1", "sku": "ABC", "received": "2026-01-02", "quantity": "5", "unit_cost": "2.00"}]
    sales = [
        {"sale_id": "S1", "sku": "ABC", "date": "2026-01-01", "quantity": "5"},
        {"sale_id": "R1", "sku": "ABC", "date": "2026-01-03", "quantity": "-2"},
    ]
    for method in ("lifo", "fifo"):
        result = trueup.cost.compute(sales, lots, method=method, policy=LENIENT)
        assert cogs_by_sale(result) == {
            "S1": (Decimal("10.00"), [("L1", 5)]),
            "R1": (Decimal("-4.00"), [("L1", -2)]),
        }, method
        assert [(lot.lot_id, lot.quantity, lot.value) for lot in result.lots_remaining()] == [
            ("L1", Decimal(2), Decimal("4.00"))
        ]

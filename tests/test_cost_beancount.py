"""trueup's FIFO against Beancount's FIFO booking, line by line, on random clean books.

Each lot becomes a Beancount augmentation with its id as the lot label (so
equal-cost lots stay apart), each sale a reduction `{}` that Beancount books
FIFO. Beancount orders a day's entries as written, so each day's lots are
written before its sales — trueup's rule that a lot received at a sale's time
is available to it.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

import trueup.cost
from tests.cost_data import random_books

loader = pytest.importorskip("beancount.loader", reason="beancount (a dev dependency) is not installed")
data = pytest.importorskip("beancount.core.data")


def ledger(sales: list[dict], lots: list[dict]) -> str:
    lines = [
        'option "booking_method" "FIFO"',
        "2025-12-31 open Assets:Inventory",
        "2025-12-31 open Equity:Purchases",
        "2025-12-31 open Expenses:COGS",
    ]
    days = sorted({row["received"] for row in lots} | {row["date"] for row in sales})
    for day in days:
        for lot in (row for row in lots if row["received"] == day):
            lines += [
                f'{day} * "lot {lot["lot_id"]}"',
                f'  Assets:Inventory  {lot["quantity"]} {lot["sku"]} {{{lot["unit_cost"]} USD, "{lot["lot_id"]}"}}',
                "  Equity:Purchases",
            ]
        for sale in (row for row in sales if row["date"] == day):
            lines += [
                f'{day} * "sale {sale["sale_id"]}"',
                f"  Assets:Inventory  -{sale['quantity']} {sale['sku']} {{}}",
                "  Expenses:COGS",
            ]
    return "\n".join(lines) + "\n"


def beancount_fifo(sales: list[dict], lots: list[dict]) -> tuple[dict[str, list[tuple[str, Decimal, Decimal]]], dict]:
    """Per sale id: [(lot id, units, unit cost)] as Beancount booked them; per lot: units left."""
    entries, errors, _ = loader.load_string(ledger(sales, lots))
    assert not errors, errors[:3]
    booked: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    left: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        kind, name = entry.narration.split(" ", 1)
        for posting in entry.postings:
            if posting.account != "Assets:Inventory":
                continue
            left[posting.cost.label] += posting.units.number
            if kind == "sale":
                booked.setdefault(name, []).append((posting.cost.label, -posting.units.number, posting.cost.number))
    return booked, {lot: units for lot, units in left.items() if units}


@pytest.mark.parametrize("seed", range(6))
def test_fifo_matches_beancount_line_by_line(seed: int) -> None:
    sales, lots = random_books(seed, skus=12, days=25)
    booked, left = beancount_fifo(sales, lots)
    result = trueup.cost.compute(sales, lots)
    assert result.exit_code == 0 and result.findings == ()
    ours = {line.sale_id: [(c.lot_id, c.quantity, c.unit_cost) for c in line.lots] for line in result.cogs()}
    assert len(ours) == len(sales) == len(booked)
    for sale_id, pieces in booked.items():
        assert ours[sale_id] == pieces, sale_id
    assert {lot.lot_id: lot.quantity for lot in result.lots_remaining()} == left
    assert result.summary.cogs == sum(q * c for pieces in booked.values() for _, q, c in pieces)

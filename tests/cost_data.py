"""Test data for the cost tests: random clean books, and a unit-by-unit FIFO reference loop.

`reference_fifo` is the slow, obviously-correct statement of trueup's FIFO:
lay each SKU's lots out unit by unit in arrival order, keep a pointer to the
next unit to sell, and walk the sales in time order moving the pointer —
forward for a sale, back for a return. Units past the last lot are short,
units before the first are returns of what was never sold.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any


def random_books(seed: int, *, skus: int = 8, days: int = 30, returns: bool = False) -> tuple[list[dict], list[dict]]:
    """Sales and lots (as rows of text) where every sale finds enough stock on its day."""
    rng = random.Random(seed)
    sales: list[dict[str, Any]] = []
    lots: list[dict[str, Any]] = []
    start = date(2026, 1, 1)
    for number in range(skus):
        sku = f"SKU{number:03d}"
        on_hand = 0
        sold_so_far = 0
        typical = rng.randint(100, 50_000)  # cents; each lot within ±30% of it, like real purchase prices
        for day in range(days):
            when = (start + timedelta(days=day)).isoformat()
            for _ in range(rng.choice((0, 0, 1, 2))):
                quantity = rng.randint(1, 40)
                cost = Decimal(rng.randint(typical * 7 // 10, typical * 13 // 10)).scaleb(-2)
                lots.append(
                    {
                        "lot_id": f"L{len(lots) + 1}",
                        "sku": sku,
                        "received": when,
                        "quantity": str(quantity),
                        "unit_cost": str(cost),
                    }
                )
                on_hand += quantity
            for _ in range(rng.choice((0, 1, 1, 2))):
                if returns and sold_so_far and rng.random() < 0.15:
                    quantity = -rng.randint(1, min(sold_so_far, 10))
                elif on_hand:
                    quantity = rng.randint(1, on_hand)
                else:
                    continue
                sales.append({"sale_id": f"S{len(sales) + 1}", "sku": sku, "date": when, "quantity": str(quantity)})
                on_hand -= quantity
                sold_so_far += quantity
    return sales, lots


def reference_fifo(sales: list[dict], lots: list[dict]) -> dict[str, Any]:
    """Per sale: [(lot id, quantity)] in lot order, uncosted units; SKUs short, over-returned, late; units left."""
    units: dict[str, list[str]] = defaultdict(list)
    for lot in sorted(lots, key=lambda lot: lot["received"]):  # stable: input order breaks ties
        units[lot["sku"]] += [lot["lot_id"]] * int(lot["quantity"])
    pointer: dict[str, int] = defaultdict(int)
    pieces: dict[str, list[tuple[str, int]]] = {}
    uncosted: dict[str, int] = {}
    short: set[str] = set()
    unmatched: set[str] = set()
    late: set[str] = set()
    received = {lot["lot_id"]: lot["received"] for lot in lots}
    for sale in sorted(sales, key=lambda sale: sale["date"]):
        sku, quantity, sale_id = sale["sku"], int(sale["quantity"]), sale["sale_id"]
        taken: dict[str, int] = {}
        uncosted[sale_id] = 0
        step = 1 if quantity > 0 else -1
        for _ in range(abs(quantity)):
            position = pointer[sku] if step > 0 else pointer[sku] - 1
            pointer[sku] += step
            if 0 <= position < len(units[sku]):
                lot = units[sku][position]
                taken[lot] = taken.get(lot, 0) + step
                if step > 0 and received[lot] > sale["date"]:
                    late.add(sku)
                continue
            uncosted[sale_id] += 1
            if step > 0 and position >= len(units[sku]):
                short.add(sku)
            if step < 0 and position < 0:
                unmatched.add(sku)
        order = {lot: index for index, lot in enumerate(dict.fromkeys(units[sku]))}
        pieces[sale_id] = sorted(taken.items(), key=lambda item: order[item[0]])
    left: dict[str, int] = {}
    for sku, lot_units in units.items():
        for lot in lot_units[max(pointer[sku], 0) :]:
            left[lot] = left.get(lot, 0) + 1
    return {"pieces": pieces, "uncosted": uncosted, "short": short, "unmatched": unmatched, "late": late, "left": left}

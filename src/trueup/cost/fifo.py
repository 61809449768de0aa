"""Columnar FIFO: each sale is an interval of a SKU's units, each lot too; COGS is their overlap.

Lay a SKU's lots end to end in the order they were received (then input
row): lot j covers units [L_j, L_j + q_j) of everything the SKU ever bought.
Lay its sales end to end in time order the same way: sale i covers
[S_i, S_i + q_i). Under FIFO the units a sale consumes are exactly the lot
units its interval overlaps, so one sorted merge (`searchsorted`) of the two
sets of interval ends costs every sale of every SKU at once — no loop per
sale or per unit, and integer arithmetic throughout, so it is exact.

Worked example (SKU ABC): lots L1 = 10 @ 2.50 received Jan 2 and L2 = 10 @ 3.00
received Jan 3 cover [0, 10) and [10, 20); sales S1 = 4 on Jan 4 and S2 = 8 on
Jan 5 cover [0, 4) and [4, 12). S1 overlaps L1 by 4 (COGS 10.00); S2 overlaps
L1 by 6 and L2 by 2 (COGS 15.00 + 6.00 = 21.00). Remaining: L2 has 8 left.

Perpetual FIFO only lets a sale use lots received by its time. A sale whose
interval overlaps a lot received after it is flagged `late` (a date mismatch:
too little stock on hand then); the overlap itself is the back-order rule
(`trueup.cost.engines`). Units past the end of all lots (≥ 20 above) are
`short`. A return runs the interval backwards: a return of 3 after S2 covers
[9, 12) with a negative sign, giving back 1 unit of L1 and 2 of L2 — the units
sold last — which the next sale takes again first.

To cost all SKUs in one pass, each SKU's lot units are offset by the total of
the SKUs before it, and sale intervals are clipped to their own SKU's range,
so no interval can reach a neighbour's lots.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from trueup.cost.books import PIECES, REMAINING, SALES, Allocation, Books
from trueup.errors import InputError


def allocate(books: Books) -> Allocation:
    lots = books.lots.filter(pl.col("quantity") > 0)
    lot_code = lots["code"].to_numpy()
    lot_qty = lots["quantity"].to_numpy()
    lot_end = np.cumsum(lot_qty, dtype=np.int64)
    if lot_end.size and lot_end[-1] >= 2**62:
        raise InputError("the purchase lots hold more units than trueup can add up exactly (2^62 in total)")
    lot_start = lot_end - lot_qty
    ends = np.concatenate(([0], lot_end))
    codes = np.arange(books.skus + 1)
    base = ends[np.searchsorted(lot_code, codes[:-1], side="left")]
    total = ends[np.searchsorted(lot_code, codes[:-1], side="right")] - base

    sale_code = books.sales["code"].to_numpy()
    sale_qty = books.sales["quantity"].to_numpy()
    running = np.cumsum(sale_qty, dtype=np.int64)
    first = np.searchsorted(sale_code, sale_code, side="left")
    after = running - np.concatenate(([0], running))[first]  # the SKU's sold units after this line
    before = after - sale_qty
    low, high = np.minimum(before, after), np.maximum(before, after)
    sku_total = total[sale_code]
    start = np.clip(low, 0, sku_total)
    stop = np.clip(high, 0, sku_total)
    covered = stop - start
    selling = sale_qty > 0
    short = np.where(selling, np.maximum(high, sku_total) - np.maximum(low, sku_total), 0)
    unmatched = np.where(selling, 0, np.minimum(high, 0) - np.minimum(low, 0))

    start_at = base[sale_code] + start
    stop_at = base[sale_code] + stop
    first_lot = np.searchsorted(lot_end, start_at, side="right")
    last_lot = np.searchsorted(lot_start, stop_at, side="left") - 1
    count = np.where(covered > 0, last_lot - first_lot + 1, 0)
    line = np.repeat(np.arange(sale_qty.size), count)
    lot = first_lot[line] + (np.arange(line.size) - np.repeat(np.cumsum(count) - count, count))
    overlap = np.minimum(stop_at[line], lot_end[lot]) - np.maximum(start_at[line], lot_start[lot])
    signed = np.where(selling[line], overlap, -overlap)
    late = selling[line] & (lots["at"].to_numpy()[lot] > books.sales["at"].to_numpy()[line])

    pieces = pl.DataFrame(
        {
            "sale": books.sales["sale"].to_numpy()[line],
            "lot": lots["lot"].to_numpy()[lot],
            "quantity": signed,
            "value": lots["unit_cost"].to_numpy()[lot],
            "late": late,
        }
    ).with_columns((pl.col("quantity").cast(pl.Int128) * pl.col("value")).alias("value"))
    pieces = pieces.cast(PIECES)
    sales = pl.DataFrame(
        {"sale": books.sales["sale"], "covered": covered, "short": short, "unmatched": unmatched}, schema=SALES
    )
    return Allocation(pieces, sales, _remaining(lots, lot_start, base, total, sale_code, after, books.skus))


def _remaining(
    lots: pl.DataFrame,
    lot_start: np.ndarray,
    base: np.ndarray,
    total: np.ndarray,
    sale_code: np.ndarray,
    after: np.ndarray,
    skus: int,
) -> pl.DataFrame:
    """What is left of each lot: the units past the SKU's final sold position."""
    sold = np.zeros(skus, dtype=np.int64)
    if sale_code.size:
        last = np.flatnonzero(np.append(sale_code[1:] != sale_code[:-1], True))
        sold[sale_code[last]] = after[last]
    position = base + np.clip(sold, 0, total)
    lot_code = lots["code"].to_numpy()
    lot_qty = lots["quantity"].to_numpy()
    left = lot_qty - np.clip(position[lot_code] - lot_start, 0, lot_qty)
    frame = pl.DataFrame(
        {"code": lot_code, "lot": lots["lot"], "quantity": left, "unit_cost": lots["unit_cost"]}
    ).filter(pl.col("quantity") > 0)
    return frame.select(
        "code", "lot", "quantity", (pl.col("quantity").cast(pl.Int128) * pl.col("unit_cost")).alias("value")
    ).cast(REMAINING)

"""The records every costing engine shares: `Books` in, an `Allocation` out (see `trueup.cost.engines`)."""

from __future__ import annotations

from typing import NamedTuple

import polars as pl


class Books(NamedTuple):
    """What an engine costs. Quantities share one scale; unit costs have their own; `code` numbers the SKUs."""

    sales: pl.DataFrame  # sale, code, at, quantity — sorted by code, at, sale
    lots: pl.DataFrame  # lot, code, at, quantity, unit_cost — sorted by code, at, lot
    skus: int


class Allocation(NamedTuple):
    """`sales` lists the sale lines in `Books.sales` order; `remaining`, by SKU code then lot order."""

    pieces: pl.DataFrame  # sale, lot (null: the average pool), quantity (signed), value (Int128, signed), late
    sales: pl.DataFrame  # sale, covered, short, unmatched
    remaining: pl.DataFrame  # code, lot (null: the average pool), quantity, value (Int128)


PIECES = {"sale": pl.Int64, "lot": pl.Int64, "quantity": pl.Int64, "value": pl.Int128, "late": pl.Boolean}
SALES = {"sale": pl.Int64, "covered": pl.Int64, "short": pl.Int64, "unmatched": pl.Int64}
REMAINING = {"code": pl.Int64, "lot": pl.Int64, "quantity": pl.Int64, "value": pl.Int128}

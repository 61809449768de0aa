"""The outcome of a costing run: plain records for Python callers, columnar frames for the writers.

A `CostResult` keeps its figures as exact scaled integers in polars frames
(the writers stream those straight to CSV) and hands out immutable records
with `Decimal` figures on request:

    result = trueup.cost.compute("sales.csv", "lots.csv")
    result.summary.cogs                     # Decimal('41.00')
    for line in result.cogs():              # CogsLine(sale_id='S1', sku='ABC', quantity=Decimal('4'),
        ...                                 #   cogs=Decimal('10.00'), lots=(Consumed('L1', 4, 2.50),), ...)
    [f.message for f in result.findings]    # what is wrong, with sources and actions
    result.exit_code                        # 0 clean, 1 something quarantined
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import polars as pl

from trueup.cost.findings import Finding
from trueup.cost.normalise import Scales
from trueup.cost.read import Table


class Consumed(NamedTuple):
    """Units of one lot that one sale line took (negative for a return); lot_id None: the average pool."""

    lot_id: str | None
    quantity: Decimal
    unit_cost: Decimal | None
    value: Decimal


class CogsLine(NamedTuple):
    sale_id: str
    sku: str
    date: datetime
    quantity: Decimal
    cogs: Decimal
    uncosted: Decimal  # units no lot covered (only when the policy lets such a SKU through)
    lots: tuple[Consumed, ...]
    source: str


class LotRemaining(NamedTuple):
    lot_id: str | None  # None: the SKU's average-cost pool
    sku: str
    received: datetime | None
    quantity: Decimal
    unit_cost: Decimal | None
    value: Decimal
    source: str | None


class InputSummary(NamedTuple):
    role: str
    name: str
    rows: int
    usable: int
    columns: Mapping[str, str]


class Summary(NamedTuple):
    method: str
    stopped: bool  # a critical finding stopped the run: nothing was costed
    skus: int
    processed: int
    quarantined: int
    sale_lines: int
    units_sold: Decimal
    units_returned: Decimal
    cogs: Decimal
    uncosted_units: Decimal
    ending_units: Decimal
    ending_value: Decimal
    findings: Mapping[str, int]  # severity -> count
    categories: Mapping[str, int]  # category -> count
    inputs: tuple[InputSummary, ...]


@dataclass(frozen=True)
class CostResult:
    sales: Table
    lots: Table
    summary: Summary
    findings: tuple[Finding, ...]
    quarantined: frozenset[str]
    scales: Scales
    lines: pl.DataFrame  # sale, sale_id, sku, at, quantity, cogs, uncosted, line (where in the sales input)
    pieces: pl.DataFrame  # sale, lot_id, quantity, unit_cost, value
    remaining: pl.DataFrame  # lot_id, sku, received, quantity, unit_cost, value, line (null: average pool)
    held: pl.DataFrame  # the rows not costed, raw beside parsed (see trueup.cost.compute.held_rows)

    @property
    def exit_code(self) -> int:
        return 1 if self.summary.stopped or any(f.quarantines for f in self.findings) else 0

    @property
    def value_scale(self) -> int:
        return self.scales.quantity + self.scales.unit_cost

    def cogs(self) -> Iterator[CogsLine]:
        """One record per costed sale line, in SKU and time order."""
        q, c, v = self.scales.quantity, self.scales.unit_cost, self.value_scale
        consumed: dict[int, list[Consumed]] = {}
        for piece in self.pieces.iter_rows(named=True):
            consumed.setdefault(piece["sale"], []).append(
                Consumed(
                    piece["lot_id"],
                    decimal(piece["quantity"], q),
                    decimal(piece["unit_cost"], c),
                    decimal(piece["value"], v),
                )
            )
        for line in self.lines.iter_rows(named=True):
            yield CogsLine(
                line["sale_id"],
                line["sku"],
                line["at"],
                decimal(line["quantity"], q),
                decimal(line["cogs"], v),
                decimal(line["uncosted"], q),
                tuple(consumed.get(line["sale"], ())),
                self.sales.label(line["line"]),
            )

    def lots_remaining(self) -> Iterator[LotRemaining]:
        """What is left of each lot (or each SKU's average pool), with its exact value."""
        q, c, v = self.scales.quantity, self.scales.unit_cost, self.value_scale
        for lot in self.remaining.iter_rows(named=True):
            yield LotRemaining(
                lot["lot_id"],
                lot["sku"],
                lot["received"],
                decimal(lot["quantity"], q),
                decimal(lot["unit_cost"], c),
                decimal(lot["value"], v),
                None if lot["line"] is None else self.lots.label(lot["line"]),
            )


def decimal(value: int | None, scale: int) -> Decimal | None:
    """A scaled integer as the exact Decimal it stands for: (250, 2) -> Decimal('2.50')."""
    return None if value is None else Decimal(value).scaleb(-scale)


def decimal_column(value: pl.Expr, scale: int) -> pl.Expr:
    """Scaled integers as exact polars Decimals, columnar: 250 at scale 2 -> 2.50, -5 -> -0.05.

    Multiplying an integer-valued Decimal by 10^-scale is exact (the product has exactly `scale` places),
    and polars writes Decimals to CSV and text digit for digit.
    """
    exact = value.cast(pl.Decimal(38, 0))
    return exact if scale == 0 else exact * pl.lit(Decimal(1).scaleb(-scale))


def date_text(value: pl.Expr) -> pl.Expr:
    """`2026-01-11` for a midnight, `2026-01-11 09:15:00` otherwise."""
    return value.dt.strftime("%Y-%m-%d %H:%M:%S").str.strip_suffix(" 00:00:00")

"""`compute()`: one costing run — read, map columns, normalise, check, cost, quarantine.

The steps, and what each may find:

1. read both inputs as text (`trueup.cost.read`); a missing file or a
   missing required column stops here with an `InputError` (exit 2);
2. normalise every cell (`trueup.cost.normalise`): unreadable cells are
   `parse_error` findings and their rows are left out;
3. check rows (`trueup.cost.checks`): duplicate ids, cost anomalies;
4. cost every SKU at once with the chosen engine (`trueup.cost.engines`);
5. check the allocation: missing lots, negative inventory, date mismatches,
   unmatched returns — skipped for SKUs already quarantined for unreadable
   rows, whose costing would only echo the missing rows;
6. rate every finding by the policy and quarantine each SKU with a `high`
   one; a `critical` one stops the run, so nothing is costed.

Nothing is printed or written here: the result is a `CostResult`, and
`trueup.cost.write` turns it into files.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from trueup.cost import checks
from trueup.cost.books import Allocation, Books
from trueup.cost.columns import FIELDS, ColumnMap, parse_overrides, resolve
from trueup.cost.engines import METHODS, allocate
from trueup.cost.findings import SEVERITIES, Finding, Policy
from trueup.cost.normalise import SKU_CASES, Context, Entries, Scales, normalise
from trueup.cost.read import LINE, Table, read_file, read_frame
from trueup.cost.result import CostResult, InputSummary, Summary, date_text, decimal, decimal_column
from trueup.errors import UsageError

log = logging.getLogger(__name__)

Input = str | Path | Table | pl.DataFrame | Sequence[Mapping[str, Any]]


def compute(
    sales: Input,
    lots: Input,
    *,
    method: str = "fifo",
    policy: Policy | Iterable[str] | Mapping[str, str] | None = None,
    columns: Iterable[str] | Mapping[str, Mapping[str, str]] | None = None,
    date_format: str | None = None,
    sku_case: str = "upper",
) -> CostResult:
    """Cost `sales` against `lots` (paths, Tables, polars frames or lists of dicts).

    `columns` maps fields to columns (`["sales.sku=Item Code"]` or
    `{"sales": {"sku": "Item Code"}}`); `policy` overrides severities
    (`["date_mismatch=medium"]`).
    """
    run = Run.of(method=method, policy=policy, columns=columns, date_format=date_format, sku_case=sku_case)
    return cost_tables(as_table(sales, "sales"), as_table(lots, "lots"), run)


class Run(NamedTuple):
    """How to cost, the same for every engine (in memory, by partitions, on Spark): `Run.of` checks it."""

    method: str
    policy: Policy
    overrides: Mapping[str, Mapping[str, str]]  # field -> column, per input
    date_format: str | None
    sku_case: str

    @classmethod
    def of(
        cls,
        *,
        method: str = "fifo",
        policy: Policy | Iterable[str] | Mapping[str, str] | None = None,
        columns: Iterable[str] | Mapping[str, Mapping[str, str]] | None = None,
        date_format: str | None = None,
        sku_case: str = "upper",
    ) -> Run:
        """The options checked: the method and SKU case known, the policy and the column overrides parsed."""
        if method not in METHODS:
            raise UsageError(f"unknown costing method {method!r} (use {', '.join(METHODS)})")
        if sku_case not in SKU_CASES:
            raise UsageError(f"unknown SKU case {sku_case!r} (use {', '.join(SKU_CASES)})")
        policy = policy if isinstance(policy, Policy) else Policy.parse(policy)
        overrides = columns if isinstance(columns, Mapping) else parse_overrides(columns or ())
        return cls(method, policy, overrides, date_format, sku_case)


def column_maps(tables: Mapping[str, Table], overrides: Mapping[str, Mapping[str, str]]) -> dict[str, ColumnMap]:
    return {role: resolve(role, t.name, t.headers, overrides.get(role, {}), t.duplicates) for role, t in tables.items()}


def cost_tables(
    sales: Table, lots: Table, run: Run, *, context: Context | None = None, stop: bool = False
) -> CostResult:
    """`compute` on two Tables. For one partition of the SKUs, `context` is the whole inputs' (scales,
    currencies) and `stop` says a critical finding elsewhere stopped the run."""
    method, policy = run.method, run.policy
    maps = column_maps({"sales": sales, "lots": lots}, run.overrides)
    sold, bought, findings = normalise(
        sales, lots, maps, sku_case=run.sku_case, date_format=run.date_format, context=context
    )
    scales = sold.scales
    findings += checks.duplicates(sold) + checks.duplicates(bought) + checks.cost_anomalies(bought, scales.unit_cost)
    findings = [policy.rate(f) for f in findings]
    unreadable = {f.sku for f in findings if f.category == "parse_error" and f.quarantines and f.sku is not None}
    books, codes = _books(sold, bought)
    log.info("costing %d sale lines and %d lots by %s", books.sales.height, books.lots.height, method)
    allocation = allocate(books, method)
    findings += [policy.rate(f) for f in checks.stock(allocation, sold, bought, skip=unreadable)]
    return _result(method, sold, bought, allocation, codes, findings, scales, stop)


def as_table(source: Input, role: str) -> Table:
    if isinstance(source, Table):
        return source
    if isinstance(source, (str, Path)):
        return read_file(source)
    if isinstance(source, pl.DataFrame):
        return read_frame(role, source)
    rows = list(source)
    return read_frame(role, pl.DataFrame(rows) if rows else pl.DataFrame(schema=dict.fromkeys(FIELDS[role], pl.String)))


def _books(sales: Entries, lots: Entries) -> tuple[Books, pl.DataFrame]:
    """The usable rows as engine input, and the SKU behind each code."""
    sold, bought = sales.usable, lots.usable
    skus = pl.concat([sold["sku"], bought["sku"]]).unique().sort()
    codes = pl.DataFrame({"sku": skus, "code": pl.int_range(skus.len(), dtype=pl.Int64, eager=True)})
    books = Books(
        sold.join(codes, on="sku")
        .select("row", "code", "at", "quantity")
        .rename({"row": "sale"})
        .sort("code", "at", "sale"),
        bought.join(codes, on="sku")
        .select("row", "code", "at", "quantity", "unit_cost")
        .rename({"row": "lot"})
        .sort("code", "at", "lot"),
        skus.len(),
    )
    return books, codes


def _result(
    method: str,
    sales: Entries,
    lots: Entries,
    allocation: Allocation,
    codes: pl.DataFrame,
    findings: list[Finding],
    scales: Scales,
    stop: bool,
) -> CostResult:
    stopped = stop or any(f.severity == "critical" for f in findings)
    every_sku = set(codes["sku"].to_list())
    every_sku |= {f.sku for f in findings if f.sku is not None}
    quarantined = frozenset(every_sku if stopped else {f.sku for f in findings if f.quarantines and f.sku})
    held = pl.col("sku").is_in(list(quarantined))

    # Engines return sales and remaining lots in Books order (SKU, then time): rows are fetched by position.
    totals = allocation.pieces.group_by("sale").agg(pl.col("value").sum().alias("cogs"))
    costed = allocation.sales.join(totals, on="sale", how="left", maintain_order="left")
    lines = pl.concat(
        [costed, sales.frame.select(pl.col("id", "sku", "at", "quantity").gather(costed["sale"]))], how="horizontal"
    ).filter(~held)
    lines = lines.select(
        "sale",
        pl.col("id").alias("sale_id"),
        "sku",
        "at",
        "quantity",
        pl.col("cogs").fill_null(0).cast(pl.Int128),
        (pl.col("quantity").abs() - pl.col("covered")).alias("uncosted"),
        sales.table.frame[LINE].gather(lines["sale"]).alias("line"),
    )
    lot_of = lots.frame.select(pl.col("id").alias("lot_id"), "at", "unit_cost")
    pieces = allocation.pieces.filter(pl.col("sale").is_in(lines["sale"].implode()))
    pieces = pl.concat(
        [pieces, lot_of.select(pl.col("lot_id", "unit_cost").gather(pieces["lot"]))], how="horizontal"
    ).select("sale", "lot_id", "quantity", "unit_cost", "value")
    remaining = _remaining(allocation, codes, lots.table, lot_of).filter(~held)
    counts = Counter(f.severity for f in findings)
    summary = Summary(
        method=method,
        stopped=stopped,
        skus=len(every_sku),
        processed=len(every_sku - quarantined),
        quarantined=len(quarantined),
        sale_lines=lines.height,
        units_sold=decimal(int(lines["quantity"].clip(lower_bound=0).sum()), scales.quantity),
        units_returned=decimal(-int(lines["quantity"].clip(upper_bound=0).sum()), scales.quantity),
        cogs=decimal(int(lines["cogs"].sum() or 0), scales.quantity + scales.unit_cost),
        uncosted_units=decimal(int(lines["uncosted"].sum()), scales.quantity),
        ending_units=decimal(int(remaining["quantity"].sum()), scales.quantity),
        ending_value=decimal(int(remaining["value"].sum() or 0), scales.quantity + scales.unit_cost),
        findings={s: counts[s] for s in SEVERITIES},
        categories=dict(Counter(f.category for f in findings)),
        inputs=tuple(
            InputSummary(e.role, e.table.name, e.table.frame.height, e.usable.height, dict(e.columns.columns))
            for e in (sales, lots)
        ),
    )
    if stopped:
        lines, pieces, remaining = lines.clear(), pieces.clear(), remaining.clear()
    return CostResult(
        sales.table,
        lots.table,
        summary,
        tuple(sorted(findings, key=finding_order)),
        quarantined,
        scales,
        lines,
        pieces,
        remaining,
        pl.concat([held_rows(sales, quarantined), held_rows(lots, quarantined)]),
    )


def _remaining(allocation: Allocation, codes: pl.DataFrame, table: Table, lot_of: pl.DataFrame) -> pl.DataFrame:
    remaining = allocation.remaining
    lot = remaining["lot"]
    return pl.concat(
        [remaining, codes.select(pl.col("sku").gather(remaining["code"])), lot_of.select(pl.all().gather(lot))],
        how="horizontal",
    ).select(
        "lot_id",
        "sku",
        pl.col("at").alias("received"),
        "quantity",
        pl.col("unit_cost")  # the average pool's unit cost: its value over its quantity, rounded half-up
        .fill_null((pl.col("value") * 2 + pl.col("quantity")) // (pl.col("quantity").cast(pl.Int128) * 2))
        .cast(pl.Int64),
        "value",
        table.frame[LINE].gather(lot).alias("line"),  # null for the average pool: it has no source row
    )


def held_rows(entries: Entries, quarantined: frozenset[str]) -> pl.DataFrame:
    """The rows not costed (unreadable, or of a quarantined SKU): each field raw beside its parsed value."""
    usable = pl.col("sku").is_not_null() & pl.all_horizontal(
        pl.col(c).is_null() for c in entries.frame.columns if c.endswith("problem")
    )
    rows = entries.frame.filter(~usable | pl.col("sku").is_in(list(quarantined)))
    raw = entries.table.frame[rows["row"].to_list()]
    parsed = {
        "id": pl.col("id"),
        "sku": pl.col("sku"),
        "date": date_text(pl.col("at")),
        "quantity": decimal_column(pl.col("quantity"), entries.scales.quantity).cast(pl.String),
        "unit_cost": decimal_column(pl.col("unit_cost"), entries.scales.unit_cost).cast(pl.String)
        if "unit_cost" in rows.columns
        else pl.lit(None, pl.String),
    }
    columns: list[pl.Series | pl.Expr] = [
        pl.lit(entries.role).alias("input"),
        pl.Series("source", entries.table.labels(rows["row"])),
    ]
    for field, text in parsed.items():
        column = entries.columns.get(field)
        columns.append(pl.Series(f"{field}_raw", raw[column] if column else [None] * rows.height, pl.String))
        columns.append(text.alias(field))
    return rows.select(columns)


# The categories in the order the steps above first find them (a summary lists them in this order).
FINDING_ORDER = (
    "parse_error",
    "duplicate_id",
    "cost_anomaly",
    "missing_lots",
    "negative_inventory",
    "date_mismatch",
    "unmatched_return",
)


def finding_order(finding: Finding) -> tuple[int, str, str]:
    return (SEVERITIES.index(finding.severity), finding.sku or "", finding.category)

"""The output tables of a `CostResult`, as text frames: what `write` puts in the CSV files, the report shows
and `store` writes to the database. Figures are exact decimals straight from the scaled integers."""

from __future__ import annotations

import polars as pl

from trueup.cost.findings import Finding
from trueup.cost.result import CostResult, date_text, decimal_column

_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first), prefixed
    with `'` as OWASP advises; a plain number such as `-4` stays as it is. JSON keeps the raw value."""
    formula = pl.col(pl.String).str.contains(_FORMULA_START) & ~pl.col(pl.String).str.contains(_PLAIN_NUMBER)
    quoted = pl.col(pl.String).str.replace("^", "'")
    return frame.with_columns(pl.when(formula).then(quoted).otherwise(pl.col(pl.String)))


def cogs_frame(result: CostResult) -> pl.DataFrame:
    q, c, v = result.scales.quantity, result.scales.unit_cost, result.value_scale
    pieces = result.pieces.filter(pl.col("lot_id").is_not_null()).select(
        "sale",
        pl.concat_str(
            pl.col("lot_id"),
            pl.lit(": "),
            decimal_column(pl.col("quantity"), q).cast(pl.String),
            pl.lit(" @ "),
            decimal_column(pl.col("unit_cost"), c).cast(pl.String),
        ).alias("lots"),
        pl.col("sale").is_duplicated().alias("several"),
    )
    several = pieces.filter("several").group_by("sale").agg("lots").with_columns(pl.col("lots").list.join("; "))
    consumed = pl.concat([pieces.filter(~pl.col("several")).drop("several"), several])  # most sales take one lot
    return result.lines.join(consumed, on="sale", how="left", maintain_order="left").select(
        "sale_id",
        "sku",
        date_text(pl.col("at")).alias("date"),
        decimal_column(pl.col("quantity"), q).alias("quantity"),
        decimal_column(pl.col("cogs"), v).alias("cogs"),
        decimal_column(pl.col("uncosted"), q).alias("uncosted_quantity"),
        pl.col("lots").fill_null(""),
    )


def lots_frame(result: CostResult) -> pl.DataFrame:
    q, c, v = result.scales.quantity, result.scales.unit_cost, result.value_scale
    return result.remaining.select(
        "lot_id",
        "sku",
        date_text(pl.col("received")).alias("received"),
        decimal_column(pl.col("quantity"), q).alias("remaining_quantity"),
        decimal_column(pl.col("unit_cost"), c).alias("unit_cost"),
        decimal_column(pl.col("value"), v).alias("remaining_value"),
    )


def quarantine_frame(result: CostResult) -> pl.DataFrame:
    rows = [
        {
            "sku": f.sku,
            "status": status(result, f),
            "category": f.category,
            "severity": f.severity,
            "message": f.message,
            "action": f.action,
            "source": "; ".join(s.where for s in f.sources),
            "column": "; ".join(dict.fromkeys(s.column for s in f.sources if s.column)),
            "raw_value": "; ".join(s.raw for s in f.sources if s.raw is not None),
        }
        for f in result.findings
    ]
    columns = ("sku", "status", "category", "severity", "message", "action", "source", "column", "raw_value")
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String))


def status(result: CostResult, finding: Finding) -> str:
    """What happened to the finding's SKU: stopped, quarantined (or the row left out), or processed."""
    if result.summary.stopped:
        return "stopped"
    if finding.sku is None:
        return "row left out"
    return "quarantined" if finding.sku in result.quarantined else "processed"

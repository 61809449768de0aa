"""Writing a `CostResult` to a directory: CSV files, summary.json and an optional HTML report.

    cogs.csv               sale_id, sku, date, quantity, cogs, uncosted_quantity, lots
                           (lots: `L1: 4 @ 2.50; L2: 2 @ 3.00`, the lot units each sale line took)
    lots_remaining.csv     lot_id, sku, received, remaining_quantity, unit_cost, remaining_value
    quarantine.csv         sku, status, category, severity, message, action, source, column, raw_value
    quarantined_rows.csv   every row not costed, each field raw beside its parsed value
    summary.json           the run's totals, findings by severity and category, inputs and columns used
    report.html            (with report=True) all of the above for people, in one self-contained page

Figures are written as exact decimals straight from the scaled integers. Each
file is written beside its final name and renamed into place once all are
complete, so an interrupted run never leaves a half-written set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from trueup.cost.findings import Finding
from trueup.cost.result import CostResult, date_text, decimal_column
from trueup.errors import TrueupError
from trueup.report.format import to_json

_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
FILES = ("cogs.csv", "lots_remaining.csv", "quarantine.csv", "quarantined_rows.csv", "summary.json")


def write_outputs(result: CostResult, directory: str | Path, *, report: bool = False) -> list[Path]:
    """Write the result's files into `directory` (created if needed); return their paths."""
    directory = Path(directory)
    with _staged(directory) as stage:
        spreadsheet_safe(cogs_frame(result)).write_csv(stage("cogs.csv"))
        spreadsheet_safe(lots_frame(result)).write_csv(stage("lots_remaining.csv"))
        spreadsheet_safe(quarantine_frame(result)).write_csv(stage("quarantine.csv"))
        spreadsheet_safe(result.held).write_csv(stage("quarantined_rows.csv"))
        stage("summary.json").write_text(to_json(summary_dict(result)) + "\n", encoding="utf-8")
        if report:
            from trueup.report.cost import render_html  # only loaded when asked for

            stage("report.html").write_text(render_html(result), encoding="utf-8")
    return [directory / name for name in (*FILES, *(("report.html",) if report else ()))]


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


def summary_dict(result: CostResult) -> dict[str, Any]:
    summary = result.summary._asdict()
    summary["inputs"] = [i._asdict() for i in result.summary.inputs]
    summary["quarantined_skus"] = sorted(result.quarantined)
    summary["exit_code"] = result.exit_code
    return summary


def result_dict(result: CostResult, directory: str | Path | None = None) -> dict[str, Any]:
    """The summary, every finding and (if written) the output directory, as one JSON-ready document."""
    document: dict[str, Any] = {"summary": summary_dict(result)}
    document["findings"] = [
        {**f._asdict(), "status": status(result, f), "sources": [s._asdict() for s in f.sources]}
        for f in result.findings
    ]
    if directory is not None:
        document["out"] = str(directory)
    return document


@contextmanager
def _staged(directory: Path) -> Iterator[Any]:
    """Yield `stage(name)` -> a temporary path; on success every staged file replaces its final name."""
    staged: list[Path] = []

    def stage(name: str) -> Path:
        path = directory / f".{name}.partial"
        staged.append(path)
        return path

    try:
        directory.mkdir(parents=True, exist_ok=True)
        yield stage
        for path in staged:
            path.replace(directory / path.name[1:].removesuffix(".partial"))
    except OSError as error:
        raise TrueupError(f"{directory}: cannot write the results: {error.strerror or error}") from None
    finally:
        for path in staged:
            path.unlink(missing_ok=True)

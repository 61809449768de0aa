"""Checks over parsed rows and over an allocation: each returns findings, none raises.

Row checks run before costing: duplicate ids (the same sale or lot id twice
for one SKU) and cost anomalies (a unit cost that is zero, negative, or at
least ten times off the median of the SKU's lots, when it has three or more).
Stock checks read the engine's `Allocation` afterwards: SKUs sold but never
bought (`missing_lots`), sales beyond every lot (`negative_inventory`), sales
covered only by lots received after them (`date_mismatch`) and returns of
more than was sold (`unmatched_return`). Each check aggregates per SKU in
polars and only builds messages, in Python, for the SKUs that failed.

Example: lots L1 (Jan 2) and L2 (Jan 9) of 10 units each, and a sale of 15 on
Jan 5: the sale overlaps L2, received after it, so ABC gets one
`date_mismatch` naming the sale, L2 and both rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import polars as pl

from trueup.cost.books import Allocation
from trueup.cost.findings import MAX_SOURCES, Finding, Source, finding
from trueup.cost.normalise import Entries
from trueup.cost.read import LINE
from trueup.cost.result import decimal

OUTLIER_FACTOR = 10
OUTLIER_MIN_LOTS = 3


def duplicates(entries: Entries) -> list[Finding]:
    """One finding per (id, SKU) that appears on more than one row."""
    if entries.columns.get("id") is None:
        return []
    kind = "sale" if entries.role == "sales" else "lot"
    fields = [c for c in ("at", "quantity", "unit_cost") if c in entries.frame.columns]
    groups = (
        entries.frame.filter(pl.struct("id", "sku").is_duplicated() & pl.col("sku").is_not_null())
        .group_by("id", "sku")
        .agg(pl.col("row"), pl.len().alias("rows"), *(pl.col(f).n_unique().alias(f) for f in fields))
        .filter(pl.col("rows") > 1)
        .sort("sku", "id")
    )
    findings = []
    for group in groups.iter_rows(named=True):
        where = [entries.table.where(row) for row in group["row"]]
        same = all(group[f] == 1 for f in fields)
        detail = "with identical values (exported twice?)" if same else "with different values"
        findings.append(
            finding(
                "duplicate_id",
                group["sku"],
                f"{kind} id {group['id']} for {group['sku']} appears on {group['rows']} rows ({_list(where)}) {detail}",
                f"Remove the repeated {kind} line(s) in {entries.table.name}, or give each {kind} line its own id",
                (Source(w, entries.columns.get("id"), group["id"]) for w in where),
            )
        )
    return findings


def cost_anomalies(lots: Entries, unit_scale: int) -> list[Finding]:
    """Unit costs that are zero or negative, or ≥10× off the SKU's median (SKUs with three or more lots)."""
    frame = lots.usable
    median = pl.col("unit_cost").cast(pl.Float64).median().over("sku")
    lots_of_sku = pl.len().over("sku")
    flagged = frame.with_columns(median.alias("median"), lots_of_sku.alias("lots")).filter(
        (pl.col("unit_cost") <= 0)
        | (
            (pl.col("lots") >= OUTLIER_MIN_LOTS)
            & (pl.col("median") > 0)
            & (
                (pl.col("unit_cost") >= OUTLIER_FACTOR * pl.col("median"))
                | (pl.col("unit_cost") * OUTLIER_FACTOR <= pl.col("median"))
            )
        )
    )
    column = lots.columns.columns["unit_cost"]
    findings = []
    for lot in flagged.iter_rows(named=True):
        where = lots.table.where(lot["row"])
        raw = lots.table.frame[column][lot["row"]]
        cost = decimal(lot["unit_cost"], unit_scale)
        if lot["unit_cost"] <= 0:
            message = f"lot {lot['id']} of {lot['sku']} has unit cost {cost}"
            action = (
                f"Enter the real unit cost of lot {lot['id']} ({where}); if the goods were free, "
                "accept it with --policy cost_anomaly=low"
            )
        else:
            median_cost = Decimal(repr(lot["median"])).scaleb(-unit_scale).quantize(Decimal(1).scaleb(-unit_scale))
            ratio = lot["unit_cost"] / lot["median"]
            size = f"{ratio:.0f}×" if ratio >= 1 else f"1/{1 / ratio:.0f}"
            message = (
                f"lot {lot['id']} of {lot['sku']} costs {cost} per unit, {size} the median "
                f"of its {lot['lots']} lots ({median_cost})"
            )
            action = f"Check the unit cost of lot {lot['id']} ({where}): a case price entered per unit, or a typo?"
        findings.append(finding("cost_anomaly", lot["sku"], message, action, [Source(where, column, raw)]))
    return findings


def stock(allocation: Allocation, sales: Entries, lots: Entries, skip: set[str]) -> list[Finding]:
    """Findings from costing: missing lots, negative inventory, date mismatches, unmatched returns."""
    lines = sales.frame.select("row", "id", "sku", "at", "quantity").join(
        allocation.sales.rename({"sale": "row"}), on="row"
    )
    lines = lines.filter(~pl.col("sku").is_in(list(skip)))
    bought = lots.usable.filter(pl.col("quantity") > 0)["sku"].unique()
    scale = sales.scales.quantity
    missing = lines.filter(~pl.col("sku").is_in(bought.implode()) & (pl.col("short") > 0))
    findings = [_missing_lots(sku, rows, sales, scale) for sku, rows in _by_sku(missing)]
    short = lines.filter(pl.col("sku").is_in(bought.implode()) & (pl.col("short") > 0))
    findings += [_negative_inventory(sku, rows, sales, lots, scale) for sku, rows in _by_sku(short)]
    late = (
        allocation.pieces.filter("late")
        .group_by("sale", maintain_order=True)
        .agg(pl.col("lot").first())
        .rename({"sale": "row"})
        .join(lines, on="row")
    )
    findings += [_date_mismatch(sku, rows, sales, lots, scale) for sku, rows in _by_sku(late)]
    unmatched = lines.filter(pl.col("unmatched") > 0)
    findings += [_unmatched_return(sku, rows, sales, scale) for sku, rows in _by_sku(unmatched)]
    return findings


def _by_sku(frame: pl.DataFrame) -> Iterable[tuple[str, pl.DataFrame]]:
    if frame.height == 0:
        return []
    return ((key[0], rows.sort("at", "row")) for key, rows in frame.sort("sku").group_by("sku", maintain_order=True))


def _missing_lots(sku: str, rows: pl.DataFrame, sales: Entries, scale: int) -> Finding:
    units = decimal(rows["short"].sum(), scale)
    first, last = rows["at"].min(), rows["at"].max()
    when = f"on {_day(first)}" if _day(first) == _day(last) else f"from {_day(first)} to {_day(last)}"
    return finding(
        "missing_lots",
        sku,
        f"{sku} sold {units} units in {rows.height} sale line(s) {when} but has no purchase lots",
        f"Upload purchase lots for {sku} covering {units} units sold {when}",
        _sources(sales, rows["row"]),
    )


def _negative_inventory(sku: str, rows: pl.DataFrame, sales: Entries, lots: Entries, scale: int) -> Finding:
    units = decimal(rows["short"].sum(), scale)
    received = lots.usable.filter(pl.col("sku") == sku)["quantity"].sum()
    first = rows.row(0, named=True)
    return finding(
        "negative_inventory",
        sku,
        f"{sku}'s sales exceed its purchase lots ({decimal(received, scale)} units) by {units} units, "
        f"from sale {first['id']} on {_day(first['at'])}",
        f"Upload purchase lots for {sku} covering {units} more units sold from {_day(first['at'])}, "
        "or correct the sale quantities",
        _sources(sales, rows["row"]),
    )


def _date_mismatch(sku: str, rows: pl.DataFrame, sales: Entries, lots: Entries, scale: int) -> Finding:
    first = rows.row(0, named=True)
    lot = lots.frame.row(first["lot"], named=True)
    more = f" ({rows.height} sale lines in all)" if rows.height > 1 else ""
    return finding(
        "date_mismatch",
        sku,
        f"sale {first['id']} of {decimal(first['quantity'], scale)} {sku} on {_day(first['at'])} can only be "
        f"covered by lot {lot['id']} received later, on {_day(lot['at'])}{more}",
        f"Check the received date of lot {lot['id']} ({lots.table.where(first['lot'])}) or the sale date, "
        f"or upload the purchase that covered sale {first['id']}",
        [*_sources(sales, rows["row"]), Source(lots.table.where(first["lot"]))],
    )


def _unmatched_return(sku: str, rows: pl.DataFrame, sales: Entries, scale: int) -> Finding:
    first = rows.row(0, named=True)
    units = decimal(rows["unmatched"].sum(), scale)
    return finding(
        "unmatched_return",
        sku,
        f"{sku}'s returns give back {units} more units than had been sold before them, "
        f"from return {first['id']} on {_day(first['at'])}",
        f"Check the quantity of return {first['id']}, or upload the sale it refunds",
        _sources(sales, rows["row"]),
    )


def _sources(entries: Entries, rows: pl.Series) -> list[Source]:
    return [Source(entries.table.label(line)) for line in entries.table.frame[LINE].gather(rows[:MAX_SOURCES])]


def _day(moment: datetime) -> str:
    return moment.date().isoformat() if moment.time() == datetime.min.time() else moment.isoformat(sep=" ")


def _list(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

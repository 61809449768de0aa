"""Normalising messy exports: text cells in, exact values and per-cell problems out.

All parsing is columnar (polars expressions), and the expensive parts (dates,
numbers) run once per distinct text, which real exports repeat a lot.

* SKU: trimmed, then upper-cased by default (`sku_case="lower"` or `"keep"`).
* Quantities and money: `1,234`, `1 234`, `1.234,50`, `$1,234.50`, `USD 12.00`,
  `12,50 €`, `(5)` (negative). A comma followed by exactly three digits is a
  thousands separator, another lone comma is a decimal comma; a single dot is
  always a decimal point. Costs in a currency other than the file's most
  common one are problems (`$` counts as USD, `€` as EUR, `£` as GBP). Values
  become integers in units of 10^-scale, the scale being the most decimals
  any value of that kind has (at most 6), so arithmetic on them is exact:
  `2.50` at scale 2 is 250.
* Dates: ISO with or without time (`2026-01-11`, `2026-01-11T09:15:00Z`),
  `20260111`, `2026/01/11`, `Jan 11, 2026`, `11 Jan 2026`, and `11/01/2026`
  style dates when the day and month cannot be confused (13/01/2026, or
  05/05/2026). An ambiguous one (03/04/2026) is never guessed: it is a problem
  of its row until `date_format` (e.g. `%d/%m/%Y`) says which is which. A UTC
  offset is dropped: times compare as written, on the shop's own clock.

A cell that cannot be read makes its row a `parse_error` finding quoting the
raw text; the row is left out of costing, and every other row goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import polars as pl

from trueup.cost.columns import ColumnMap
from trueup.cost.findings import Finding, Source, finding
from trueup.cost.read import LINE, PROBLEM, Table

MAX_SCALE = 6
SKU_CASES = ("upper", "lower", "keep")

_SYMBOL = r"[A-Z]{3}|[$€£¥₹]"
_SYMBOL_CODES = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_PLAIN = r"^\d+(\.\d+)?$"
_NUMBER = (  # the whole shape: optional parentheses, one sign, a currency before or after, the digits
    rf"^\(?\s*[-+−]?\s*(?:{_SYMBOL})?\s*[-+−]?\s*[0-9][0-9.,'\s]*(?:{_SYMBOL})?\s*\)?-?$"
)
_CANONICAL = (  # (pattern of the digits, how to turn them into `1234.5`)
    (r"^\d+(\.\d+)?$", lambda b: b),
    (r"^\d{1,3}(,\d{3})+(\.\d+)?$", lambda b: b.str.replace_all(",", "")),
    (r"^\d{1,3}(\.\d{3})+,\d+$", lambda b: b.str.replace_all(".", "", literal=True).str.replace(",", ".")),
    (r"^\d{1,3}(\.\d{3}){2,}$", lambda b: b.str.replace_all(".", "", literal=True)),
    (r"^\d+,\d+$", lambda b: b.str.replace(",", ".")),
)
_TIME = (
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?:Z|UTC|[+-]\d{2}:?\d{2})?"
)
_DATES = (
    rf"^(?P<y>\d{{4}})[-/.](?P<m>\d{{1,2}})[-/.](?P<d>\d{{1,2}}){_TIME}$",
    r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$",
    rf"^(?P<a>\d{{1,2}})[-/.](?P<b>\d{{1,2}})[-/.](?P<y>\d{{4}}){_TIME}$",
    rf"^(?P<mon>[A-Za-z]{{3,9}})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}}){_TIME}$",
    rf"^(?P<d>\d{{1,2}})(?:st|nd|rd|th)?[\s-]+(?P<mon>[A-Za-z]{{3,9}})\.?,?[\s-]+(?P<y>\d{{4}}){_TIME}$",
)
_PLAIN_LAYOUTS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d", "%Y/%m/%d")
_YEARS = (1000, 9999)  # the years every database trueup writes to can store (MySQL DATE starts in 1000)
_DATE_PARTS = ("y", "m", "d", "a", "b", "mon", "H", "M", "S", "f", "ampm")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
FIELD_LABELS = {"id": "id", "sku": "SKU", "date": "date", "quantity": "quantity", "unit_cost": "unit cost"}


class Entries(NamedTuple):
    """One input's readable rows, parsed: the frame the engines cost."""

    role: str
    table: Table
    columns: ColumnMap
    frame: pl.DataFrame  # row, id, sku, at, quantity, [unit_cost]; quantity/unit_cost scaled by `scales`
    scales: Scales

    @property
    def usable(self) -> pl.DataFrame:
        """The rows with a SKU and every cell readable: the ones that are costed."""
        problems = [pl.col(c).is_null() for c in self.frame.columns if c.endswith("problem")]
        return self.frame.filter(pl.col("sku").is_not_null(), *problems)


class Scales(NamedTuple):
    quantity: int
    unit_cost: int


def normalise(
    sales: Table,
    lots: Table,
    columns: Mapping[str, ColumnMap],
    *,
    sku_case: str = "upper",
    date_format: str | None = None,
) -> tuple[Entries, Entries, list[Finding]]:
    """Parse both inputs; return their readable rows (scaled to shared scales) and the problems found."""
    parsed = {
        role: _parse(table, role, columns[role], sku_case, date_format)
        for role, table in (("sales", sales), ("lots", lots))
    }
    scales = Scales(
        quantity=max(_scale_of(parsed["sales"], "quantity"), _scale_of(parsed["lots"], "quantity")),
        unit_cost=_scale_of(parsed["lots"], "unit_cost"),
    )
    parsed["lots"] = _flag_currencies(parsed["lots"])
    findings: list[Finding] = []
    entries = []
    for role, table in (("sales", sales), ("lots", lots)):
        frame = _scaled(parsed[role], scales)
        findings += _problems(frame, table, columns[role])
        entries.append(Entries(role, table, columns[role], frame, scales))
    return entries[0], entries[1], findings


def _parse(table: Table, role: str, columns: ColumnMap, sku_case: str, date_format: str | None) -> pl.DataFrame:
    source = table.frame
    frame = pl.DataFrame(
        {
            "row": pl.int_range(source.height, dtype=pl.Int64, eager=True),
            "sku": _sku(source[columns.columns["sku"]], sku_case),
            "problem": source[PROBLEM],
        }
    )
    id_column = columns.get("id")
    where = table.label_expr()
    ids = source.select(where.alias("id") if id_column is None else _blank_to_null(id_column).fill_null(where))
    frame = frame.with_columns(ids["id"])
    frame = frame.hstack(_dates(source[columns.columns["date"]], date_format))
    frame = frame.hstack(_numbers(source[columns.columns["quantity"]], "quantity", negative_ok=role == "sales"))
    if role == "lots":
        frame = frame.hstack(_numbers(source[columns.columns["unit_cost"]], "unit_cost", negative_ok=True))
    return frame


def _sku(raw: pl.Series, case: str) -> pl.Series:
    text = raw.str.strip_chars()
    text = text.str.to_uppercase() if case == "upper" else text.str.to_lowercase() if case == "lower" else text
    return pl.select(pl.when(text != "").then(text).alias("sku")).to_series()


def _blank_to_null(column: str) -> pl.Expr:
    text = pl.col(column).str.strip_chars()
    return pl.when(text != "").then(text).alias("id")


# -- numbers -----------------------------------------------------------------------------------


def _numbers(raw: pl.Series, field: str, *, negative_ok: bool) -> pl.DataFrame:
    """Per row: `{field}_neg`, `_whole`, `_frac` digit strings, `_currency` and `_problem` (null when fine).

    Each distinct text takes the cheapest path that reads it: plain digits (`12.50`), plain digits with one
    currency (`$12.50`, `12.50 USD`), and only then the full reading of signs, brackets and separators.
    """
    text = pl.col("text")
    values = pl.DataFrame({"raw": raw.unique().drop_nulls()}).with_columns(text=pl.col("raw").str.strip_chars())
    is_plain = text.str.contains(_PLAIN)
    plain = _plain_parts(values.filter(is_plain), text, pl.lit(None, pl.String))
    values = values.filter(~is_plain)
    if values.height == 0:  # compiling the patterns below costs more than reading a clean column
        return _number_columns(raw, plain, field, negative_ok=negative_ok)
    values = values.with_columns(
        text.str.extract(f"({_SYMBOL})", 1).replace(_SYMBOL_CODES).alias("currency"),
        text.str.count_matches(_SYMBOL).alias("currencies"),
        text.str.replace_all(rf"{_SYMBOL}|\s", "").alias("bare"),
    )
    is_priced = (pl.col("currencies") <= 1) & pl.col("bare").str.contains(_PLAIN)
    priced = _plain_parts(values.filter(is_priced), pl.col("bare"), pl.col("currency"))
    values = values.filter(~is_priced)
    values = values.with_columns(  # materialised one by one: polars would re-run a shared regex
        text.str.contains(_NUMBER).alias("shaped"),
        text.str.count_matches("[-+−]").alias("signs"),
        text.str.contains(r"^\(").alias("opened"),
        text.str.contains(r"\)-?$").alias("closed"),
        text.str.replace_all(r"[^0-9.,]", "").alias("body"),
    )
    body = pl.col("body")
    canonical = pl.lit(None, pl.String)
    for pattern, rewrite in reversed(_CANONICAL):
        canonical = pl.when(body.str.contains(pattern)).then(rewrite(body)).otherwise(canonical)
    values = values.with_columns(
        canonical.alias("canonical"),
        (text.str.contains("[-−]") | pl.col("opened")).alias("neg"),
    ).with_columns(
        pl.col("canonical").str.extract(r"^(\d+)").alias("whole"),
        pl.col("canonical").str.extract(r"\.(\d+)$").fill_null("").alias("frac"),
        pl.when(
            ~pl.col("shaped")
            | pl.col("canonical").is_null()
            | (pl.col("opened") != pl.col("closed"))
            | (pl.col("signs") > 1)
            | (pl.col("currencies") > 1)
        )
        .then(pl.lit("not_a_number"))
        .alias("problem"),
    )
    values = pl.concat([plain, priced, values.select(plain.columns)])
    return _number_columns(raw, values, field, negative_ok=negative_ok)


def _plain_parts(values: pl.DataFrame, digits: pl.Expr, currency: pl.Expr) -> pl.DataFrame:
    """Rows whose `digits` are plain (`1234.5`): their whole and fractional digits, positive, readable."""
    parts = digits.str.split_exact(".", 1)
    return values.select(
        "raw",
        pl.lit(False).alias("neg"),
        parts.struct["field_0"].alias("whole"),
        parts.struct["field_1"].fill_null("").alias("frac"),
        currency.alias("currency"),
        pl.lit(None, pl.String).alias("problem"),
    )


def _number_columns(raw: pl.Series, values: pl.DataFrame, field: str, *, negative_ok: bool) -> pl.DataFrame:
    """The parsed distinct values checked for what `field` may not hold, and spread back over the rows."""
    checks = pl.col("problem")
    if field == "quantity":
        checks = checks.fill_null(pl.when(pl.col("currency").is_not_null()).then(pl.lit("currency_in_quantity")))
    if not negative_ok:
        checks = checks.fill_null(
            pl.when(
                pl.col("neg") & (pl.col("whole").str.contains("[1-9]") | pl.col("frac").str.contains("[1-9]"))
            ).then(pl.lit("negative"))
        )
    checks = checks.fill_null(pl.when(pl.col("frac").str.len_chars() > MAX_SCALE).then(pl.lit("too_precise")))
    values = values.with_columns(checks.alias("problem"))
    joined, blank = _per_row(raw, values)
    return joined.select(
        pl.col("neg").alias(f"{field}_neg"),
        pl.col("whole").alias(f"{field}_whole"),
        pl.col("frac").alias(f"{field}_frac"),
        pl.col("currency").alias(f"{field}_currency"),
        pl.when(blank).then(pl.lit("missing")).otherwise(pl.col("problem")).alias(f"{field}_problem"),
    )


def _scale_of(frame: pl.DataFrame, field: str) -> int:
    if f"{field}_frac" not in frame.columns:
        return 0
    ok = frame.filter(pl.col(f"{field}_problem").is_null())
    longest = ok[f"{field}_frac"].str.len_chars().max()
    return int(longest or 0)


def _units(field: str, scale: int) -> pl.Expr:
    """The parsed parts of `field` as an integer in units of 10^-scale (null where unreadable)."""
    digits = pl.col(f"{field}_whole") + pl.col(f"{field}_frac").str.pad_end(scale, "0")
    magnitude = digits.cast(pl.Int64, strict=False)
    return pl.when(pl.col(f"{field}_neg")).then(-magnitude).otherwise(magnitude)


def _scaled(frame: pl.DataFrame, scales: Scales) -> pl.DataFrame:
    fields = [f for f in ("quantity", "unit_cost") if f"{f}_whole" in frame.columns]
    return (
        frame.with_columns(_units(f, getattr(scales, f)).alias(f) for f in fields)
        .with_columns(  # a value too large for 64 bits is a problem of its row, not an overflow
            pl.col(f"{f}_problem").fill_null(pl.when(pl.col(f).is_null()).then(pl.lit("too_large"))) for f in fields
        )
        .with_columns(pl.when(pl.col(f"{f}_problem").is_null()).then(pl.col(f)).alias(f) for f in fields)
    )


def _flag_currencies(frame: pl.DataFrame) -> pl.DataFrame:
    """Unit costs in a currency other than the most common one are problems: trueup converts no money."""
    counts = frame["unit_cost_currency"].drop_nulls().value_counts(sort=True)
    if counts.height <= 1:
        return frame
    main = counts["unit_cost_currency"][0]
    other = (pl.col("unit_cost_currency") != main).fill_null(False)
    return frame.with_columns(pl.col("unit_cost_problem").fill_null(pl.when(other).then(pl.lit(f"currency:{main}"))))


# -- dates -------------------------------------------------------------------------------------


def _dates(raw: pl.Series, date_format: str | None) -> pl.DataFrame:
    """Per row: `at` (a naive datetime) and `date_problem` (null, `missing`, `ambiguous` or `not_a_date`)."""
    values = pl.DataFrame({"raw": raw.unique().drop_nulls()}).with_columns(text=pl.col("raw").str.strip_chars())
    known = []
    for layout in (date_format, *_PLAIN_LAYOUTS) if date_format else _PLAIN_LAYOUTS:
        # the common layouts parse without regular expressions, each only what the ones before left
        values = values.with_columns(at=pl.col("text").str.to_datetime(layout, strict=False, time_unit="us"))
        known.append(values.filter(pl.col("at").is_not_null()).select("raw", "at"))
        values = values.filter(pl.col("at").is_null())
    if values.height:
        known.append(_unusual_dates(values).select("raw", "at", "date_problem"))
    parsed = pl.concat(known, how="diagonal")
    if "date_problem" not in parsed.columns:
        parsed = parsed.with_columns(date_problem=pl.lit(None, pl.String))
    # polars reads years Python's dates (and the databases') cannot hold, such as 0000-01-01
    outside = pl.col("at").is_not_null() & ~pl.col("at").dt.year().is_between(*_YEARS)
    parsed = parsed.with_columns(
        pl.when(outside).then(None).otherwise(pl.col("at")).alias("at"),
        pl.when(outside).then(pl.lit("out_of_range")).otherwise(pl.col("date_problem")).alias("date_problem"),
    )
    joined, blank = _per_row(raw, parsed)
    return joined.select(
        "at", pl.when(blank).then(pl.lit("missing")).otherwise(pl.col("date_problem")).alias("date_problem")
    )


def _unusual_dates(values: pl.DataFrame) -> pl.DataFrame:
    """Dates in the layouts `_PLAIN_LAYOUTS` misses, read with `_DATES`; ambiguous day/month ones are marked."""
    for index, pattern in enumerate(_DATES):
        values = values.with_columns(pl.col("text").str.extract_groups(pattern).alias(f"g{index}"))
    values = values.with_columns(
        pl.coalesce([pl.col(f"g{i}").struct[name] for i, p in enumerate(_DATES) if f"<{name}>" in p]).alias(name)
        for name in _DATE_PARTS
    )
    a, b = pl.col("a").cast(pl.Int32), pl.col("b").cast(pl.Int32)
    month_name = pl.col("mon").str.to_lowercase().str.slice(0, 3).replace_strict(_MONTHS, default=None)
    values = values.with_columns(
        pl.coalesce(
            pl.col("m").cast(pl.Int32),
            month_name.cast(pl.Int32),
            pl.when((a > 12) | (a == b)).then(b).when(b > 12).then(a),
        ).alias("month"),
        pl.coalesce(pl.col("d").cast(pl.Int32), pl.when((a > 12) | (a == b)).then(a).when(b > 12).then(b)).alias("day"),
        ((a <= 12) & (b <= 12) & (a != b)).fill_null(False).alias("ambiguous"),
    )
    hour = pl.col("H").cast(pl.Int32).fill_null(0)
    pm = pl.col("ampm").str.to_lowercase().str.starts_with("p")
    hour = pl.when(pl.col("ampm").is_null()).then(hour).when(pm).then(hour % 12 + 12).otherwise(hour % 12)
    text = pl.format(
        "{}-{}-{} {}:{}:{}.{}",
        pl.col("y"),
        pl.col("month").cast(pl.String).str.zfill(2),
        pl.col("day").cast(pl.String).str.zfill(2),
        hour.cast(pl.String).str.zfill(2),
        pl.col("M").fill_null("00"),
        pl.col("S").fill_null("00"),
        pl.col("f").fill_null("").str.pad_end(6, "0").str.slice(0, 6),
    )
    parsed = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    return values.with_columns(parsed.alias("at")).with_columns(
        pl.when(pl.col("at").is_not_null())
        .then(pl.lit(None, pl.String))
        .when(pl.col("ambiguous"))
        .then(pl.lit("ambiguous"))
        .otherwise(pl.lit("not_a_date"))
        .alias("date_problem")
    )


def _per_row(raw: pl.Series, values: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """What was parsed once per distinct text, spread back over the rows; and which rows are blank."""
    joined = pl.DataFrame({"raw": raw}).join(values, on="raw", how="left", maintain_order="left")
    return joined, raw.str.strip_chars().fill_null("") == ""


# -- problems as findings ----------------------------------------------------------------------


def _problems(frame: pl.DataFrame, table: Table, columns: ColumnMap) -> list[Finding]:
    """One parse_error per unreadable cell, quoting it; rows without a SKU are findings too."""
    fields = [f for f in ("date", "quantity", "unit_cost") if f"{f}_problem" in frame.columns]
    bad = frame.with_columns(
        pl.any_horizontal(
            pl.col("problem").is_not_null(),
            pl.col("sku").is_null(),
            *(pl.col(f"{f}_problem").is_not_null() for f in fields),
        ).alias("bad")
    )
    rows = bad.filter("bad")
    if rows.height == 0:
        return []
    raw = table.frame[rows["row"].to_list()]
    findings = []
    for index, row in enumerate(rows.iter_rows(named=True)):
        where = table.label(raw[LINE][index])
        sku = row["sku"]
        if row["problem"] is not None:
            findings.append(
                finding(
                    "parse_error",
                    sku,
                    f"{where}: {row['problem']}",
                    f"Quote values that contain the separator, or fix the line in {table.name}",
                    [Source(where)],
                )
            )
        if sku is None:
            column = columns.columns["sku"]
            findings.append(
                finding(
                    "parse_error",
                    None,
                    f"{where}: no SKU (column {column!r} is empty); the row is left out",
                    f"Fill in the SKU on {where}",
                    [Source(where, column, raw[column][index])],
                )
            )
        for field in fields:
            problem = row[f"{field}_problem"]
            if problem is not None:
                column = columns.columns[field]
                text = raw[column][index]
                message, action = describe(problem, field, text)
                findings.append(
                    finding("parse_error", sku, f"{where}: {message}", action, [Source(where, column, text)])
                )
    return findings


def describe(problem: str, field: str, raw: str | None) -> tuple[str, str]:
    """(message, action) for a cell problem code."""
    label = FIELD_LABELS[field]
    if problem == "missing":
        return f"no {label}", f"Fill in the {label}"
    if problem == "ambiguous":
        return (
            f"date {raw!r} could be day/month or month/day",
            "Re-run with --date-format %d/%m/%Y if days come first, or --date-format %m/%d/%Y if months do",
        )
    if problem == "not_a_date":
        return (
            f"{raw!r} is not a date trueup can read",
            "Write it as YYYY-MM-DD (optionally with a time), or give its layout with --date-format",
        )
    if problem == "out_of_range":
        return (
            f"date {raw!r} is outside the years {_YEARS[0]}–{_YEARS[1]}",
            "Correct the year (a blank or zero date exported as 0000-01-01?)",
        )
    if problem == "currency_in_quantity":
        return f"quantity {raw!r} is not a plain number", "Write the quantity as a number, without units or currency"
    if problem == "negative":
        return (
            f"lot quantity {raw!r} is negative",
            "A purchase lot's quantity must be positive; record returns to the supplier separately",
        )
    if problem == "too_precise":
        return f"{label} {raw!r} has more than {MAX_SCALE} decimal places", f"Round the {label} to {MAX_SCALE} places"
    if problem == "too_large":
        return f"{label} {raw!r} is too large", f"Check the {label}"
    if problem.startswith("currency:"):
        main = problem.split(":", 1)[1]
        return (
            f"unit cost {raw!r} is not in {main}, the currency of the other lots",
            f"Convert the cost to {main}; trueup does not convert currencies",
        )
    return f"{label} {raw!r} is not a number", f"Correct the {label} to a number such as 12 or 1,234.50"

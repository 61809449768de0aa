"""Reading exports: CSV, Excel and Parquet files, or a SQL query, into a `Table` of text.

Every cell is read as text, exactly as exported, so that normalising can
keep the raw value beside the parsed one and a finding can quote it. Each
row carries the number a person would look for: the line in a CSV file, the
row in a spreadsheet, or the 1-based row of a Parquet file or query result.

CSV takes a fast path (polars, multi-threaded) when every record sits on one
line and has no more fields than the header; otherwise a careful path (the
`csv` module) keeps exact line numbers across quoted newlines and marks a
record with too many fields (typically an unquoted `1,234`) as a problem of
that row instead of guessing which fields belong together.

    table = read_file("sales.csv")        # Table(name="sales.csv", frame=..., numbering="line")
    table.where(0)                        # "sales.csv:2": the first data row is on line 2
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import fastexcel
import polars as pl
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from trueup.db import driver_message, user_sql
from trueup.errors import DatabaseError, InputError

log = logging.getLogger(__name__)

LINE = "__line"  # the row's line (or row) number, as shown to people
PROBLEM = "__problem"  # why the row could not be read whole, or null
_CSV = {".csv", ".txt", ".tsv"}
_EXCEL = {".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"}
_PARQUET = {".parquet", ".pq"}
_HEAD = 1 << 16  # the bytes a scanned CSV's checks read
_BYTES_PER_ROW = 64  # a CSV block's bytes per row it should hold (export lines are 40 to 60 bytes)
_MOSTLY_BINARY = 0.1  # more odd characters than this share: random or compressed bytes (Latin-1 text has few)


class Table(NamedTuple):
    """One input as text: `frame` has the export's columns (all String) plus LINE and PROBLEM."""

    name: str
    frame: pl.DataFrame
    numbering: str = "line"  # "line": sources read `name:N`; "row": `name row N`
    duplicates: tuple[str, ...] = ()  # headers the file names twice or more (their copies are renamed)

    @property
    def headers(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (LINE, PROBLEM)]

    def where(self, index: int) -> str:
        return self.label(self.frame[LINE][index])

    def label(self, number: int) -> str:
        return f"{self.name}:{number}" if self.numbering == "line" else f"{self.name} row {number}"

    def label_expr(self) -> pl.Expr:
        """`where` for every row, as a column."""
        glue = ":" if self.numbering == "line" else " row "
        return pl.format("{}" + glue + "{}", pl.lit(self.name), pl.col(LINE))

    def labels(self, rows: pl.Series) -> pl.Series:
        return self.frame.select(self.label_expr()).to_series().gather(rows)


def read_file(path: str | Path) -> Table:
    """Read a CSV, Excel or Parquet export; an unreadable file is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in _EXCEL:
            return _numbered(path.name, _as_text(pl.read_excel(path, engine="calamine", infer_schema_length=0)), 2)
        if suffix in _PARQUET:
            return _numbered(path.name, _as_text(pl.read_parquet(path)), 1, numbering="row")
        if suffix not in _CSV:
            log.info("%s: unknown suffix %r, reading it as CSV", path, suffix)
        return read_csv(path.name, path.read_bytes())
    except (pl.exceptions.PolarsError, fastexcel.FastExcelError, OSError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: cannot read it as {_kind(suffix)}: {first}") from None


class Unsplittable(Exception):
    """A CSV export whose records do not each fill one line (quoted newlines, a field too many, an unclosed
    quote): only `read_file` reads it, whole."""


def scan_file(path: str | Path, rows: int = 1 << 18) -> tuple[Table, Iterator[pl.DataFrame]]:
    """An export read a block at a time: its Table without rows (name, headers, numbering) and its rows as
    text in blocks of about `rows` rows, in input order.

    A CSV file streams in blocks of whole lines, each parsed as `read_csv` parses the whole file; iterating
    raises `Unsplittable` at the first block whose records do not fill its lines (a record cut by a block
    boundary leaves an unclosed quote there, which polars refuses). Parquet is read a slice at a time;
    spreadsheets are read whole.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix in _EXCEL or (suffix in _PARQUET and not _parquet_ok(path)):
        table = read_file(path)
        return table._replace(frame=table.frame.clear()), table.frame.iter_slices(rows)
    if suffix in _PARQUET:
        frame = _numbered_lazy(_as_text_lazy(pl.scan_parquet(path)), 1)
        return Table(path.name, frame.head(0).collect(), "row"), _parquet_blocks(frame, rows)
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    table = read_csv(path.name, head[: head.rfind(b"\n") + 1] or head)  # the checks, on whole lines
    header = head[: head.find(b"\n") + 1]
    blocks = _csv_blocks(path, table, header, _separator(head), rows * _BYTES_PER_ROW)
    return table._replace(frame=table.frame.clear()), blocks


def _parquet_blocks(frame: pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """Slices of `rows` rows, each read from the row groups it needs (polars' own streaming holds more)."""
    total = frame.select(pl.len()).collect().item()
    for offset in range(0, total, rows):
        yield frame.slice(offset, rows).collect()


def _csv_blocks(path: Path, table: Table, header: bytes, separator: str, size: int) -> Iterator[pl.DataFrame]:
    if not header:
        raise Unsplittable  # one line, longer than the checks read
    first = 2
    with path.open("rb") as handle:
        handle.seek(len(header))
        pending = b""
        while data := handle.read(size):
            data = pending + data
            cut = data.rfind(b"\n") + 1
            if cut:
                yield _csv_block(table, header + data[:cut], separator, first)
                first += data.count(b"\n", 0, cut)
            pending = data[cut:]
    if pending:
        yield _csv_block(table, header + pending, separator, first)


def _csv_block(table: Table, data: bytes, separator: str, first: int) -> pl.DataFrame:
    """One block (the header line, then whole lines) as `read_csv` reads it, numbered from line `first`."""
    try:
        frame = pl.read_csv(data, infer_schema=False, separator=separator, encoding="utf8-lossy")
    except pl.exceptions.ComputeError:
        raise Unsplittable from None
    if data.count(b"\n") + (0 if data.endswith(b"\n") else 1) != frame.height + 1:
        raise Unsplittable
    return _numbered(table.name, frame, first).frame.select(table.frame.columns)


def _parquet_ok(path: Path) -> bool:
    try:
        pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError):
        return False
    return True


def _numbered_lazy(frame: pl.LazyFrame, first: int) -> pl.LazyFrame:
    names = frame.collect_schema().names()
    frame = frame.rename({c: c.strip() for c in names if c != c.strip()})
    return frame.with_row_index(LINE, offset=first).select(
        pl.exclude(LINE), pl.col(LINE).cast(pl.Int64), pl.lit(None, pl.String).alias(PROBLEM)
    )


def _as_text_lazy(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.all().cast(pl.String))


def read_csv(name: str, data: bytes) -> Table:
    """A CSV export from its bytes; the separator (, ; tab |) is taken from the header line."""
    if not data.strip():
        raise InputError(f"{name}: the file is empty (expected a header line, then one line per row)")
    if _binary(data):
        raise InputError(f"{name}: not a text (CSV) file; export the data as CSV, or give .xlsx or .parquet files")
    separator = _separator(data)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    duplicates = _duplicates(data, separator)
    try:
        frame = pl.read_csv(data, infer_schema=False, separator=separator, encoding="utf8-lossy")
    except pl.exceptions.ComputeError:
        return _careful_csv(name, data, separator)._replace(duplicates=duplicates)
    if lines != frame.height + 1:  # quoted newlines or blank lines: line numbers need the careful path
        return _careful_csv(name, data, separator)._replace(duplicates=duplicates)
    return _numbered(name, frame, 2)._replace(duplicates=duplicates)


def read_frame(name: str, frame: pl.DataFrame) -> Table:
    """A frame already in memory (e.g. built from Python records): its cells as text, rows numbered from 1."""
    return _numbered(name, _as_text(frame), 1, numbering="row")


def read_query(name: str, connection: Connection, sql: str) -> Table:
    """The rows of the user's query as text; a failing query is a DatabaseError quoting the driver."""
    try:
        result = connection.execute(user_sql(sql))
        headers = list(result.keys())
        rows = result.fetchall()
    except SQLAlchemyError as error:
        raise DatabaseError(f"{name}: the query failed: {driver_message(error)}") from None
    columns = {header: [_text(row[i]) for row in rows] for i, header in enumerate(headers)}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(headers, pl.String))
    return _numbered(name, frame, 1, numbering="row")


def _careful_csv(name: str, data: bytes, separator: str) -> Table:
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=""), delimiter=separator)
    headers: list[str] | None = None
    records: list[list[str | None]] = []
    numbers: list[int] = []
    problems: list[str | None] = []
    end = 0
    for row in reader:
        start, end = end + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if headers is None:
            headers = _unique(row)
            continue
        width = len(headers)
        problems.append(
            f"{len(row)} fields where the header has {width} (an unquoted separator inside a value?)"
            if len(row) > width
            else None
        )
        records.append([*row[:width], *([None] * (width - len(row)))])
        numbers.append(start)
    if headers is None:
        raise InputError(f"{name}: the file is empty (expected a header line, then one line per row)")
    frame = pl.DataFrame(records, schema=dict.fromkeys(headers, pl.String), orient="row")
    return Table(
        name,
        frame.with_columns(pl.Series(LINE, numbers, pl.Int64), pl.Series(PROBLEM, problems, pl.String)),
    )


def _numbered(name: str, frame: pl.DataFrame, first: int, *, numbering: str = "line") -> Table:
    frame = frame.rename({c: c.strip() for c in frame.columns if c != c.strip()})
    return Table(
        name,
        frame.with_columns(
            (pl.int_range(pl.len(), dtype=pl.Int64) + first).alias(LINE), pl.lit(None, pl.String).alias(PROBLEM)
        ),
        numbering,
    )


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))


def _binary(data: bytes, sample: int = 65536) -> bool:
    """Bytes no CSV export has: a NUL, or (read as UTF-8) mostly control characters and undecodable bytes."""
    head = data[:sample]
    if b"\x00" in head:
        return True
    text = head.decode("utf-8", errors="replace")
    odd = sum(1 for c in text if c == "\ufffd" or (c < " " and c not in "\t\r\n"))
    return odd > len(text) * _MOSTLY_BINARY


def _duplicates(data: bytes, separator: str) -> tuple[str, ...]:
    """The non-blank names the header record gives more than one column."""
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=""), delimiter=separator))
    names = [h.strip() for h in header if h.strip()]
    return tuple(dict.fromkeys(h for h in names if names.count(h) > 1))


def _separator(data: bytes) -> str:
    header = data.split(b"\n", 1)[0]
    counts = {sep: header.count(sep.encode()) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for header in headers:
        header = header.strip()
        seen[header] = seen.get(header, 0) + 1
        names.append(header if seen[header] == 1 else f"{header}_{seen[header]}")
    return names


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") and hasattr(value, "year") else value.isoformat()
    return str(value)


def _kind(suffix: str) -> str:
    return "Excel" if suffix in _EXCEL else "Parquet" if suffix in _PARQUET else "CSV"

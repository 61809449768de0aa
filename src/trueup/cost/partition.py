"""Costing in bounded memory: the inputs split by SKU into Parquet partitions, each costed on its own.

Costing is independent per SKU, so `cost_to_directory` reads each input once,
a block at a time (`trueup.cost.read.scan_file`: CSV files in blocks of whole
lines, Parquet by row groups; spreadsheets, query results and CSV files whose
records span lines are whole), spills the blocks as Parquet under a work
directory, counts the rows of each SKU and plans partitions of consecutive SKUs
(in SKU order) of at most `memory // BYTES_PER_LINE` rows — a SKU larger than
that is a partition of its own. Then each block, one at a time, is written into
its partitions: a row goes to the last partition whose first SKU is at or
before its own (with partitions starting at A, D and K, SKU F is in the second).
Rows without a SKU form one more partition. Memory is one block, the per-SKU
counts and one partition, however long the inputs. Each partition is
then costed twice with today's engine (`trueup.cost.compute.cost_tables`):

1. a first look gathers what the whole inputs decide (scales, the lots' main
   currency: `trueup.cost.normalise.Context`);
2. the run itself, with that context, appends its sale lines and lots to the
   output files as it goes; the rows not costed are spilled and written at the
   end in input order, the findings and summary are merged.

A critical finding in any partition stops the whole run: the partitions are
then costed once more as stopped, so that every file is what the in-memory
engine writes. The outputs are byte for byte those of `compute` and
`write_outputs` on the same inputs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import polars as pl

from trueup.cost.compute import FINDING_ORDER, Input, Run, as_table, column_maps, cost_tables, finding_order
from trueup.cost.findings import SEVERITIES
from trueup.cost.normalise import Context, context, sku_expr
from trueup.cost.read import LINE, Table, Unsplittable, scan_file
from trueup.cost.result import CostResult, InputSummary, Summary
from trueup.cost.write import Streams
from trueup.errors import InputError, UsageError

log = logging.getLogger(__name__)

BYTES_PER_LINE = 1024  # what the in-memory engine needs per input line (measured: about 0.7 KB)
FILE_FACTOR = 16  # its memory over the size of the files it reads (CSV lines of 40 to 60 bytes)
KEY = "__sku"
PART = "__part"
NO_SKU = -1
_MIN_BLOCK, _MAX_BLOCK = 10_000, 1 << 20  # rows of an input read at a time


def parse_memory(text: str) -> int:
    """`512M`, `2GiB`, `64k` or a number of bytes as bytes (K, M, G and T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise UsageError(f"--memory {text!r}: give a size such as 512M, 2G or 4GiB")
    return max(int(float(match[1]) * 1024 ** " kmgt".index(match[2].lower() or " ")), 1)


def machine_memory() -> int:
    """A quarter of the machine's memory: the default `--memory`."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def fits(sources: Mapping[str, Input], memory: int) -> bool:
    """Whether the in-memory engine's estimate for these inputs is within `memory` bytes."""
    need = 0
    for source in sources.values():
        if isinstance(source, (str, Path)):
            path = Path(source)
            need += path.stat().st_size * FILE_FACTOR if path.is_file() else 0
        elif isinstance(source, Table):
            need += source.frame.height * BYTES_PER_LINE
        elif isinstance(source, pl.DataFrame):
            need += source.height * BYTES_PER_LINE
    return need <= memory


class _Part(NamedTuple):
    number: int
    tables: dict[str, Table]
    index: int  # its place in the run, from 0
    total: int  # the run's partitions


Progress = Callable[[str, int, int], None]


def cost_to_directory(
    sales: Input,
    lots: Input,
    out: str | Path,
    *,
    memory: int,
    work_dir: str | Path | None = None,
    run: Run | None = None,
    progress: Progress | None = None,
) -> CostResult:
    """Cost in partitions of at most `memory` bytes and write the files `write_outputs` writes into `out`.

    The result has the summary and findings; its rows (`lines`, `pieces`, `remaining`, `held`) are empty:
    they are in the files. `progress(step, done, total)` hears of each partition looked at, then costed.
    """
    run = run or Run.of()
    with working(Path(out), work_dir) as work:
        budget = max(memory // BYTES_PER_LINE, 1)
        heads = _spill({"sales": sales, "lots": lots}, work, run, budget)
        tell = progress or (lambda step, done, total: None)
        whole = _context(_counted(_parts(heads, work), "partition looked at", tell), run)
        try:
            return _cost(heads, work, Path(out), run, whole, stop=False, tell=tell)
        except _Stopped:
            return _cost(heads, work, Path(out), run, whole, stop=True, tell=tell)


def _counted(parts: Iterator[_Part], step: str, tell: Progress) -> Iterator[_Part]:
    """The partitions, telling `tell` after each one."""
    for part in parts:
        yield part
        tell(step, part.index + 1, part.total)


class _Stopped(Exception):
    """A partition has a critical finding: every partition must be costed again as stopped."""


@contextmanager
def working(out: Path, work_dir: str | Path | None) -> Iterator[Path]:
    """A fresh folder under `work_dir` (or `out`), removed at the end; `out` too if the run made it and failed."""
    parent = Path(work_dir) if work_dir is not None else out
    made = not parent.exists()
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".trueup-cost-", dir=parent))
    except OSError as error:
        raise InputError(f"{parent}: cannot make a work directory: {error.strerror or error}") from None
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if made:
            with suppress(OSError):
                parent.rmdir()
        raise
    shutil.rmtree(work, ignore_errors=True)


def _spill(sources: Mapping[str, Input], work: Path, run: Run, budget: int) -> dict[str, Table]:
    """Each input spilled by partition under `work/<role>/`; return their row-less Tables."""
    rows = block_rows(budget * BYTES_PER_LINE)
    heads = {role: spill_input(source, role, work / f"{role}-blocks", rows) for role, source in sources.items()}
    maps = column_maps(heads, run.overrides)
    keys = {role: sku_expr(pl.col(maps[role].columns["sku"]), run.sku_case).alias(KEY) for role in heads}
    counts = [
        pl.scan_parquet(work / f"{role}-blocks" / "*.parquet").select(key).group_by(KEY).agg(pl.len().alias("rows"))
        for role, key in keys.items()
    ]
    per_sku = pl.concat(counts).group_by(KEY).agg(pl.col("rows").sum()).collect(engine="streaming")
    plan = plan_parts(per_sku, budget)
    starts = plan.group_by(PART, maintain_order=True).agg(pl.col(KEY).first()).get_column(KEY)
    for role, key in keys.items():
        _split(work / f"{role}-blocks", key, starts, work / role)
    return heads


def block_rows(memory: int) -> int:
    """The rows of an input read at a time within `memory` bytes: a block is not the largest thing held."""
    return min(max(memory // BYTES_PER_LINE, _MIN_BLOCK), _MAX_BLOCK)


def spill_input(source: Input, role: str, blocks: Path, rows: int) -> Table:
    """The input's row-less Table; its rows spilled as Parquet blocks of about `rows` rows in `blocks`, in
    input order, one block in memory at a time when it streams from a file."""
    if isinstance(source, (str, Path)):
        head, frames = scan_file(source, rows)
        try:
            _write_blocks(head, frames, blocks)
            return head
        except (Unsplittable, pl.exceptions.PolarsError):  # the careful CSV reader, or polars cannot read it
            shutil.rmtree(blocks)
    table = as_table(source, role)
    _write_blocks(table, table.frame.iter_slices(rows), blocks)
    return table._replace(frame=table.frame.clear())


def _write_blocks(head: Table, frames: Iterator[pl.DataFrame], blocks: Path) -> None:
    blocks.mkdir()
    count = 0
    for count, frame in enumerate(frames, 1):
        frame.write_parquet(blocks / f"{count:08d}.parquet")
    if not count:
        head.frame.write_parquet(blocks / "00000000.parquet")


def _split(blocks: Path, key: pl.Expr, starts: pl.Series, folder: Path) -> None:
    """Each block's rows written into their partitions, `folder/__part=N/<block>.parquet`, one block at a time.

    `starts` holds each partition's first SKU, in order: a row's partition is the last one starting at or
    before its SKU."""
    found = pl.lit(starts).search_sorted(key, side="right").cast(pl.Int64) - 1
    part_of = pl.when(key.is_null()).then(NO_SKU).otherwise(found).alias(PART)
    for path in sorted(blocks.glob("*.parquet")):
        rows = pl.read_parquet(path).with_columns(part_of)
        for (number,), part in rows.partition_by(PART, as_dict=True, include_key=False).items():
            (folder / f"{PART}={number}").mkdir(parents=True, exist_ok=True)
            part.write_parquet(folder / f"{PART}={number}" / path.name)
        path.unlink()


def plan_parts(per_sku: pl.DataFrame, budget: int) -> pl.DataFrame:
    """Consecutive SKUs (in sort order) grouped into partitions of at most `budget` rows, or one SKU each."""
    skus = per_sku.filter(pl.col(KEY).is_not_null()).sort(KEY)
    numbers, part, filled = [], 0, 0
    for rows in skus["rows"].to_list():
        if filled and filled + rows > budget:
            part, filled = part + 1, 0
        numbers.append(part)
        filled += rows
    return skus.select(KEY, pl.Series(PART, numbers, pl.Int64))


def _parts(heads: Mapping[str, Table], work: Path) -> Iterator[_Part]:
    """The partitions in order (rows without a SKU first), each input's rows in input order."""
    numbers = sorted({int(d.name.split("=", 1)[1]) for role in heads for d in (work / role).glob(f"{PART}=*")})
    order = [NO_SKU, *(n for n in numbers if n != NO_SKU)]
    for index, number in enumerate(order):
        tables = {}
        for role, head in heads.items():
            files = sorted((work / role / f"{PART}={number}").glob("*.parquet"))
            rows = pl.read_parquet(files).sort(LINE) if files else head.frame
            tables[role] = head._replace(frame=rows.select(head.frame.columns))
        yield _Part(number, tables, index, len(order))


def _context(parts: Iterator[_Part], run: Run) -> Context:
    whole: Context | None = None
    for part in parts:
        maps = column_maps(part.tables, run.overrides)
        found = context(
            part.tables["sales"], part.tables["lots"], maps, sku_case=run.sku_case, date_format=run.date_format
        )
        whole = found if whole is None else whole.merge(found)
    assert whole is not None  # there is always the partition of rows without a SKU
    return whole


def _cost(
    heads: Mapping[str, Table],
    work: Path,
    out: Path,
    run: Run,
    whole: Context,
    *,
    stop: bool,
    tell: Progress,
) -> CostResult:
    """Cost the partitions one at a time, appending to the output files; raise `_Stopped` on a critical
    finding unless `stop` says the run is stopped already."""
    held = work / f"held-{stop}"
    held.mkdir()
    costed = []
    with Streams(out) as streams:
        for part in _counted(_parts(heads, work), "partition costed", tell):
            result = cost_tables(part.tables["sales"], part.tables["lots"], run, context=whole, stop=stop)
            if result.summary.stopped and not stop:
                raise _Stopped
            streams.append(result)
            result.held.with_columns(
                (pl.col("input") == "lots").alias("__lots"),
                pl.col("source").str.extract(r"(\d+)$").cast(pl.Int64).alias("__number"),
            ).write_parquet(held / f"{part.number}.parquet")
            costed.append(rowless(result))
        log.info("costed %d partitions", len(costed))
        merged = merge_results(costed)
        rows = pl.scan_parquet(held / "*.parquet").sort("__lots", "__number").drop("__lots", "__number")
        streams.finish(merged, rows.collect(engine="streaming"))
    return merged


def rowless(result: CostResult) -> CostResult:
    """The result without its rows (they are in the files): its summary, findings and quarantine."""
    return replace(
        result,
        sales=result.sales._replace(frame=result.sales.frame.clear()),
        lots=result.lots._replace(frame=result.lots.frame.clear()),
        lines=result.lines.clear(),
        pieces=result.pieces.clear(),
        remaining=result.remaining.clear(),
        held=result.held.clear(),
    )


def merge_results(results: list[CostResult]) -> CostResult:
    summaries = [r.summary for r in results]
    first = summaries[0]
    findings = tuple(sorted((f for r in results for f in r.findings), key=finding_order))
    quarantined = [r.quarantined for r in results]
    categories: dict[str, int] = {}
    for category in FINDING_ORDER:
        count = sum(s.categories.get(category, 0) for s in summaries)
        if count:
            categories[category] = count
    summary = Summary(
        **{f: sum(getattr(s, f) for s in summaries[1:]) + getattr(first, f) for f in _ADDED},
        method=first.method,
        stopped=any(s.stopped for s in summaries),
        findings={severity: sum(s.findings[severity] for s in summaries) for severity in SEVERITIES},
        categories=categories,
        inputs=tuple(
            InputSummary(i.role, i.name, sum(s.inputs[n].rows for s in summaries), usable, i.columns)
            for n, i in enumerate(first.inputs)
            for usable in [sum(s.inputs[n].usable for s in summaries)]
        ),
    )
    return replace(results[0], summary=summary, findings=findings, quarantined=frozenset().union(*quarantined))


_ADDED = (
    "skus",
    "processed",
    "quarantined",
    "sale_lines",
    "units_sold",
    "units_returned",
    "cogs",
    "uncosted_units",
    "ending_units",
    "ending_value",
)

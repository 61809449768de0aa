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

import io
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NotRequired

import polars as pl

from trueup.cost.findings import Finding, Source
from trueup.cost.frames import cogs_frame, lots_frame, quarantine_frame, spreadsheet_safe, status
from trueup.cost.result import CostResult, Summary
from trueup.errors import TrueupError
from trueup.report.format import to_json
from trueup.schema import Document, record

SummaryEntry = record(Summary, "SummaryEntry", quarantined_skus=list[str], exit_code=int)  # what summary_dict gives
FindingEntry = record(Finding, "CostFindingEntry", status=str, sources=list[record(Source, "FindingSource")])  # type: ignore[misc]


class CostDocument(Document):
    """What `trueup cost --format json` prints; the service adds the output files and what was stored."""

    summary: SummaryEntry  # type: ignore[valid-type]
    findings: list[FindingEntry]  # type: ignore[valid-type]
    out: NotRequired[str]  # the output directory, when written


FILES = ("cogs.csv", "lots_remaining.csv", "quarantine.csv", "quarantined_rows.csv", "summary.json")


def write_outputs(result: CostResult, directory: str | Path, *, report: bool = False) -> list[Path]:
    """Write the result's files into `directory` (created if needed); return their paths."""
    with Streams(directory, report=report) as streams:
        streams.append(result)
        streams.finish(result, result.held)
    return streams.paths


class Streams:
    """The files written in steps: `append` each part's sale lines and lots (parts in SKU order), then
    `finish` with the whole run's result (findings, summary) and its rows not costed. Nothing replaces
    the files in `directory` unless every step succeeds."""

    def __init__(self, directory: str | Path, *, report: bool = False):
        self.directory, self.report = Path(directory), report
        self.paths = [self.directory / name for name in (*FILES, *(("report.html",) if report else ()))]
        self._stack = ExitStack()
        self._header = True

    def __enter__(self) -> Streams:
        stage = self._stack.enter_context(_staged(self.directory))
        self._stage = stage
        self._cogs = self._stack.enter_context(stage("cogs.csv").open("wb"))
        self._lots = self._stack.enter_context(stage("lots_remaining.csv").open("wb"))
        return self

    def __exit__(self, *exc: object) -> bool | None:
        return self._stack.__exit__(*exc)

    def append(self, result: CostResult) -> None:
        self.append_csv(*csv_parts(result))

    def append_csv(self, cogs: bytes, lots: bytes) -> None:
        """A part's cogs.csv and lots_remaining.csv as `csv_parts` makes them; only the first keeps its header."""
        if not self._header:
            cogs, lots = cogs.split(b"\n", 1)[1], lots.split(b"\n", 1)[1]
        self._cogs.write(cogs)
        self._lots.write(lots)
        self._header = False

    def finish(self, result: CostResult, held: pl.DataFrame) -> None:
        stage = self._stage
        spreadsheet_safe(quarantine_frame(result)).write_csv(stage("quarantine.csv"))
        spreadsheet_safe(held).write_csv(stage("quarantined_rows.csv"))
        stage("summary.json").write_text(to_json(summary_dict(result)) + "\n", encoding="utf-8")
        if self.report:
            from trueup.report.cost import render_html  # only loaded when asked for

            stage("report.html").write_text(render_html(result), encoding="utf-8")


def csv_parts(result: CostResult) -> tuple[bytes, bytes]:
    """The result's cogs.csv and lots_remaining.csv, each with its header line."""
    cogs, lots = io.BytesIO(), io.BytesIO()
    spreadsheet_safe(cogs_frame(result)).write_csv(cogs)
    spreadsheet_safe(lots_frame(result)).write_csv(lots)
    return cogs.getvalue(), lots.getvalue()


def summary_dict(result: CostResult) -> dict[str, Any]:
    summary = result.summary._asdict()
    summary["inputs"] = [i._asdict() for i in result.summary.inputs]
    summary["quarantined_skus"] = sorted(result.quarantined)
    summary["exit_code"] = result.exit_code
    return summary


def result_dict(result: CostResult, directory: str | Path | None = None) -> CostDocument:
    """The summary, every finding and (if written) the output directory, as one JSON-ready document."""
    document: CostDocument = {
        "summary": summary_dict(result),
        "findings": [
            {**f._asdict(), "status": status(result, f), "sources": [s._asdict() for s in f.sources]}
            for f in result.findings
        ],
    }
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

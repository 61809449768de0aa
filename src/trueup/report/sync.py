"""Sync rounds for people (one line each) and for log shippers (one JSON object each)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from trueup.reconcile.history import Sighting
from trueup.reconcile.sync import RoundResult
from trueup.report.format import key_text, literal, number, to_json
from trueup.report.json import DriftEntry, FindingEntry, drift_dict, finding_dict
from trueup.schema import Document, Exact, KeyValues, record

LOGGED = 100  # drifted keys listed per round in JSON logs (counts are always complete)
SightingEntry = record(Sighting, "SightingEntry")  # what sighting_document gives


class RecurrenceEntry(Document):
    """A key that drifted again after a run repaired it; `hints` are the source records that arrived since."""

    key: KeyValues
    delta: Exact
    repaired_at: str
    run_id: int
    hints: list[str]


class RoundDocument(Document):
    """One sync round: what `trueup sync --format json` prints and `POST /api/sync` answers."""

    ts: str
    rule: str
    kind: str
    status: str
    checked: int
    drifted: int
    corrected: int
    run_id: int | None
    duration: float
    drift: list[DriftEntry]  # the first LOGGED drifted keys; the counts are complete
    recurring: list[RecurrenceEntry]
    message: str
    findings: list[FindingEntry]


def round_line(result: RoundResult) -> str:
    """`2026-11-21 10:05:00 diapers incremental: 37 checked, 2 drifted, 2 corrected (run 45) [0.21 s]`."""
    head = f"{result.started_at:%Y-%m-%d %H:%M:%S} {result.rule} {result.kind}"
    if result.status in ("skipped", "queued"):
        return f"{head}: {result.status}, {result.message}"
    text = f"{head}: {number(result.checked)} checked, {number(result.drifted)} drifted"
    if result.corrected or result.run_id:
        text += f", {number(result.corrected)} corrected (run {result.run_id})"
    if result.status in ("refused", "residual"):
        text += f", {result.status}" + (f" ({result.message})" if result.message else "")
    for found in result.findings:
        if found.severity == "error":
            keys = ", ".join(key_text(tuple(row["key"])) for row in found.sample if "key" in row)
            text += f"\n  {found.kind}: {found.message}" + (f" ({keys})" if keys else "")
    for recurrence in result.recurring:
        hints = "; ".join(recurrence.hints) or "no timed source changed"
        text += (
            f"\n  recurring: key {key_text(recurrence.key)} drifted {recurrence.delta:+} again after run "
            f"{recurrence.run_id} repaired it at {recurrence.repaired_at:%Y-%m-%d %H:%M:%S}; {hints}"
        )
    return text + f" [{result.duration:.2f} s]"


def round_document(result: RoundResult) -> RoundDocument:
    return {
        "ts": result.started_at.isoformat() + "Z",
        "rule": result.rule,
        "kind": result.kind,
        "status": result.status,
        "checked": result.checked,
        "drifted": result.drifted,
        "corrected": result.corrected,
        "run_id": result.run_id,
        "duration": round(result.duration, 4),
        "drift": [drift_dict(d) for d in result.drift[:LOGGED]],
        "recurring": [
            {
                "key": list(r.key),
                "delta": r.delta,
                "repaired_at": r.repaired_at.isoformat() + "Z",
                "run_id": r.run_id,
                "hints": list(r.hints),
            }
            for r in result.recurring
        ],
        "message": result.message,
        "findings": [finding_dict(f) for f in result.findings],
    }


class HistoryDocument(Document):
    """What `trueup history --format json` prints and `GET /api/history` answers: newest first."""

    history: list[SightingEntry]  # type: ignore[valid-type]


def history_document(sightings: list[Sighting]) -> HistoryDocument:
    return {"history": [sighting_document(s) for s in sightings]}


def round_json(result: RoundResult) -> str:
    return to_json(round_document(result))


def print_sightings(sightings: list[Sighting], console: Console) -> None:
    if not sightings:
        console.print("No drift recorded by sync rounds.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("seen (UTC)", "rule", "key", "delta", "repaired by", "recurring"):
        table.add_column(column, justify="right" if column == "delta" else "left", no_wrap=column == "seen (UTC)")
    for s in sightings:
        repaired = f"run {s.run_id}" if s.run_id else ""
        recurring = "RECURRING" if s.recurring else ""
        table.add_row(
            f"{s.observed_at:%m-%d %H:%M:%S}",
            literal(s.rule),
            literal(key_text(s.key)),
            number(s.delta, signed=True),
            repaired,
            recurring,
        )
    console.print(table)


def sighting_document(sighting: Sighting) -> dict[str, Any]:
    return sighting._asdict() | {"key": list(sighting.key)}

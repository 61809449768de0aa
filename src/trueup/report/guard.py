"""A standing guard as plain data: what `trueup guard status --format json` and `GET /api/guard` list."""

from __future__ import annotations

from trueup.guard import Installed
from trueup.schema import Document


class GuardEntry(Document):
    rule: str
    mode: str
    tables: list[str]
    run_id: int
    trueup_version: str | None
    config_sha256: str | None
    complete: bool  # False: a MySQL install killed between its triggers
    changed_since: str  # whether the rule as configured now would install other DDL: no, yes, or why unknown


def guard_row(installed: Installed, changed: str) -> GuardEntry:
    """`changed`: whether the rule as configured now would install other DDL ("no", "yes", or why unknown)."""
    return {
        "rule": installed.rule,
        "mode": installed.mode,
        "tables": list(installed.tables),
        "run_id": installed.run_id,
        "trueup_version": installed.tool_version,
        "config_sha256": installed.config_sha256,
        "complete": installed.complete,
        "changed_since": changed,
    }

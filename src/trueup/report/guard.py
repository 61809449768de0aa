"""A standing guard as plain data: what `trueup guard status --format json` and `GET /api/guard` list."""

from __future__ import annotations

from typing import Any

from trueup.guard import Installed


def guard_row(installed: Installed, changed: str) -> dict[str, Any]:
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

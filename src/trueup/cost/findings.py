"""Findings: what is wrong with the data, where, how bad, and what to do about it.

A `Finding` is a value, never an exception: every check returns the findings
it made and the caller collects them all, so one bad SKU never hides another
(as Beancount's booking returns `(entries, errors)`). Each finding names its
SKU, carries its `Source`s (`sales.csv:14`, column `Qty`, raw value `12 pcs`)
and says both what is wrong (`message`) and what to do (`action`).

Categories and their default severities:

    category            default  meaning
    parse_error         high     a cell cannot be read (the row is left out)
    duplicate_id        high     a sale or lot id appears more than once for a SKU
    missing_lots        high     a SKU was sold but never bought
    negative_inventory  high     a SKU's sales exceed all its purchase lots
    date_mismatch       high     a sale could only be covered by lots received after it
    unmatched_return    high     a return gives back more units than were sold before it
    cost_anomaly        medium   a lot's unit cost is zero, negative, or ≥10× off the SKU's median

Severities decide what happens (`Policy` maps each category to one, and the
user may override any, e.g. `date_mismatch=medium`):

    critical  stops the whole run: no SKU is costed
    high      quarantines the SKU: none of its results are written, its neighbours are unaffected
    medium    warns; the SKU is costed anyway under the documented rule (see `trueup.cost`)
    low       informs

Example: a sale of 500 units of XYZ789 on 2026-01-11 with no lots at all is
`Finding("XYZ789", "missing_lots", "high", "XYZ789 sold 500 units ... but has
no purchase lots", "Upload purchase lots for XYZ789 covering 500 units sold on
2026-01-11", (Source("sales.csv:14"),))`, and XYZ789 is quarantined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from trueup.errors import UsageError

SEVERITIES = ("critical", "high", "medium", "low")

DEFAULT_SEVERITY: dict[str, str] = {
    "parse_error": "high",
    "duplicate_id": "high",
    "missing_lots": "high",
    "negative_inventory": "high",
    "date_mismatch": "high",
    "unmatched_return": "high",
    "cost_anomaly": "medium",
}
CATEGORIES = tuple(DEFAULT_SEVERITY)
MAX_SOURCES = 20  # a SKU-level finding lists at most this many rows; its message gives the counts


class Source(NamedTuple):
    """Where a finding comes from: `where` is `file:line` (or `file row N`), with the cell when known."""

    where: str
    column: str | None = None
    raw: str | None = None

    def __str__(self) -> str:
        return self.where


class Finding(NamedTuple):
    sku: str | None  # None when the row's SKU itself is unreadable
    category: str
    severity: str
    message: str
    action: str
    sources: tuple[Source, ...] = ()

    @property
    def quarantines(self) -> bool:
        return self.severity in ("critical", "high")


class Policy(NamedTuple):
    """The severity of each category: the defaults, with the user's overrides."""

    severities: Mapping[str, str]

    @classmethod
    def parse(cls, overrides: Iterable[str] | Mapping[str, str] | None = None) -> Policy:
        """`["date_mismatch=medium"]` or `{"date_mismatch": "medium"}` -> a Policy; bad input is a UsageError."""
        pairs = overrides.items() if isinstance(overrides, Mapping) else (_split(o) for o in overrides or ())
        severities = dict(DEFAULT_SEVERITY)
        for category, severity in pairs:
            category, severity = category.strip().lower(), severity.strip().lower()
            if category not in DEFAULT_SEVERITY:
                raise UsageError(f"--policy: unknown category {category!r} (categories: {', '.join(CATEGORIES)})")
            if severity not in SEVERITIES:
                raise UsageError(f"--policy {category}: unknown severity {severity!r} (use {', '.join(SEVERITIES)})")
            severities[category] = severity
        return cls(severities)

    def rate(self, finding: Finding) -> Finding:
        return finding._replace(severity=self.severities[finding.category])


def _split(text: str) -> tuple[str, str]:
    category, sep, severity = text.partition("=")
    if not sep:
        raise UsageError(f"--policy {text!r}: expected CATEGORY=SEVERITY, e.g. date_mismatch=medium")
    return category, severity


def finding(category: str, sku: str | None, message: str, action: str, sources: Iterable[Source] = ()) -> Finding:
    """A finding at its category's default severity (`Policy.rate` applies the user's policy)."""
    return Finding(sku, category, DEFAULT_SEVERITY[category], message, action, tuple(sources)[:MAX_SOURCES])

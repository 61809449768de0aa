"""Drift arithmetic: comparison rows in, drift rows, findings and totals out.

Pure functions and plain records; no database here. `classify()` decides
what one comparison row (one key, see `trueup.reconcile.query`) means, and a
`Tally` folds a stream of them into a `RuleResult` in constant memory: it keeps
counts, sums, a bounded sample per finding, the first `keep` drift rows
(the worst ones, since the query orders them worst first) and totals per
`group` for at most `MAX_GROUPS` groups; past that the breakdown is dropped
and a `groups_omitted` finding says so (a group per item or two, such as a
child or a customer, would otherwise make memory grow with the items).

Example: a key with recorded 524, expected 480 and 3 future-dated records is
drift (delta -44) *and* a `future_dated` finding counting 3 records; a key
with expected -5 and no recorded row is a `missing_row` finding (and
`negative_expected`), or drift with recorded 0 if the rule says
`insert_missing = true`. With a rule `tolerance` of 0.001, a key with recorded
10 and expected 10.001 is neither: the query flags it `within` (the comparison
is the database's, against the exact tolerance) and it is counted in
`within_tolerance`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

SAMPLE_SIZE = 5
MAX_GROUPS = 10_000  # distinct groups a breakdown holds; beyond it memory would grow with the items


class ComparisonRow(NamedTuple):
    """One key's figures, as the comparison query returns them."""

    key: tuple[Any, ...]
    recorded: Decimal
    rec_rows: int
    rec_nulls: int
    unit_value: Decimal | None
    group: Any
    expected: Decimal
    records: int
    future: int
    null_qty: int
    within: int = 0  # 1: the figures differ by no more than the rule's tolerance


class DriftRow(NamedTuple):
    """A key whose recorded figure differs from the expected one; `delta` is the correction."""

    key: tuple[Any, ...]
    recorded: Decimal
    expected: Decimal
    delta: Decimal
    unit_value: Decimal | None = None
    group: Any = None
    missing: bool = False  # no recorded row exists yet (insert_missing rules)
    flags: tuple[str, ...] = ()  # the key's error-severity findings: a repair leaves it out unless told

    @property
    def value(self) -> Decimal | None:
        return None if self.unit_value is None else self.delta * self.unit_value


class Flagged(NamedTuple):
    """A drifted key a repair left out because of its error-severity findings (e.g. `negative_expected`)."""

    key: tuple[Any, ...]
    recorded: Decimal
    expected: Decimal
    findings: tuple[str, ...]

    @property
    def delta(self) -> Decimal:
        return self.expected - self.recorded


class Finding(NamedTuple):
    """An integrity problem met while checking: a kind, how many, a few examples."""

    kind: str
    severity: str
    count: int
    sample: tuple[dict[str, Any], ...]
    message: str


class GroupSummary(NamedTuple):
    group: Any
    drifted: int
    abs_drift: Decimal
    value_impact: Decimal | None


class RuleResult(NamedTuple):
    name: str
    key_columns: tuple[str, ...]
    items: int
    drifted: int
    abs_drift: Decimal
    value_impact: Decimal | None  # Σ delta × unit_value: the stock-value change a repair books
    abs_value_impact: Decimal | None  # Σ |delta| × unit_value: how much value is misstated
    worst: tuple[DriftRow, ...]
    groups: tuple[GroupSummary, ...]
    findings: tuple[Finding, ...]
    distribution: tuple[tuple[str, int], ...]  # (bucket label, drifted keys), see delta_bucket()
    within_tolerance: int = 0  # keys whose figures differ by no more than the rule's tolerance: not drift

    @property
    def clean(self) -> bool:
        return self.drifted == 0

    @property
    def fails_run(self) -> bool:
        """Drift, or an error-severity finding (a duplicated key, a negative expected figure)."""
        return bool(self.drifted) or any(f.severity == "error" for f in self.findings)


# kind -> (severity, what is counted, explanation)
FINDING_KINDS: dict[str, tuple[str, str, str]] = {
    "missing_row": (
        "warning",
        "keys",
        "key(s) appear in the sources but have no recorded row (orphan records); "
        "set insert_missing = true on the rule to create the rows",
    ),
    "duplicate_key": ("error", "keys", "key(s) have more than one recorded row; a key must identify one row"),
    "null_key": ("warning", "records", "record(s) have a NULL key and were left out of the comparison"),
    "null_recorded": ("warning", "keys", "recorded row(s) hold NULL; counted as 0"),
    "null_quantity": ("warning", "records", "source record(s) have a NULL quantity; counted as 0"),
    "future_dated": ("warning", "records", "source record(s) are dated in the future"),
    "negative_expected": (
        "error",
        "keys",
        "key(s) have a negative expected figure: the opening figure or the sources are wrong",
    ),
    "negative_recorded": ("warning", "keys", "recorded figure(s) are negative"),
    "mostly_drifted": (
        "warning",
        "items",
        "item(s) drifted, more than half: usually a config mistake (see trueup.reconcile.diagnose)",
    ),
    "key_not_found": (
        "error",
        "keys",
        "named key(s) are in neither the recorded table nor any source of the rule: "
        "check the values and the order of the key's columns",
    ),
    "groups_omitted": (
        "info",
        "groups",
        "or more groups drifted, too many to break down: the breakdown by group is left out "
        "(each drifted key still names its group); choose a coarser group column",
    ),
}


class Verdict(NamedTuple):
    """What one key means: a drift row (or None), its findings as (kind, count) pairs, and whether
    it differs only within the rule's tolerance."""

    drift: DriftRow | None
    findings: list[tuple[str, int]]
    within_tolerance: bool = False


def classify(row: ComparisonRow, *, insert_missing: bool) -> Verdict:
    """What one key means (see `Verdict`)."""
    findings: list[tuple[str, int]] = []
    if None in row.key:
        return Verdict(None, [("null_key", row.records + row.rec_rows)])
    if row.rec_rows > 1:
        findings.append(("duplicate_key", 1))
    if row.rec_nulls:
        findings.append(("null_recorded", 1))
    if row.future:
        findings.append(("future_dated", row.future))
    if row.null_qty:
        findings.append(("null_quantity", row.null_qty))
    if row.expected < 0:
        findings.append(("negative_expected", 1))
    if row.recorded < 0:
        findings.append(("negative_recorded", 1))

    missing = row.rec_rows == 0
    if missing and not insert_missing:
        return Verdict(None, [("missing_row", 1), *findings])
    if row.rec_rows > 1:
        return Verdict(None, findings)
    delta = row.expected - row.recorded
    if delta == 0 or row.within:
        return Verdict(None, findings, bool(row.within))
    flags = tuple(kind for kind, _ in findings if FINDING_KINDS[kind][0] == "error")
    drift = DriftRow(row.key, row.recorded, row.expected, delta, row.unit_value, row.group, missing, flags)
    return Verdict(drift, findings)


def delta_bucket(delta: Decimal) -> str:
    """Order-of-magnitude bucket for the distribution chart: '-99..-10', '-9..-1', '+1..+9', ..."""
    magnitude = abs(delta)
    # exponent of the leading digit: 7 -> 0, 42 -> 1, 850 -> 2; below 1 -> one bucket per sign
    return _bucket_label(delta < 0, magnitude.adjusted() if magnitude >= 1 else None)


@functools.cache
def _bucket_label(negative: bool, decade: int | None) -> str:
    if decade is None:
        return "-<1" if negative else "+<1"
    low, high = 10**decade, 10 ** (decade + 1) - 1
    return f"-{high}..-{low}" if negative else f"+{low}..+{high}"


def bucket_order(label: str) -> float:
    """Sort key placing buckets from most negative to most positive."""
    sign = -1 if label.startswith("-") else 1
    body = label[1:].split("..")[0].lstrip("-+")
    magnitude = 0.5 if body == "<1" else float(body)
    return sign * magnitude


class Tally:
    """Folds the comparison rows of one rule into a `RuleResult`, in constant memory."""

    def __init__(
        self,
        name: str,
        key_columns: tuple[str, ...],
        *,
        recorded_items: int,
        insert_missing: bool,
        keep: int | None = 20,
    ):
        self.name = name
        self.key_columns = key_columns
        self.insert_missing = insert_missing
        self.keep = keep
        self.items = recorded_items
        self.drifted = 0
        self.within_tolerance = 0
        self.abs_drift = Decimal(0)
        self.value_impact: Decimal | None = None
        self.abs_value_impact: Decimal | None = None
        self.worst: list[DriftRow] = []
        self.groups: dict[Any, list[Any]] = {}
        self.groups_omitted = False  # more than MAX_GROUPS groups drifted: no breakdown
        self.finding_counts: Counter[str] = Counter()
        self.finding_samples: dict[str, list[dict[str, Any]]] = {}
        self.distribution: Counter[str] = Counter()

    def add(self, row: ComparisonRow) -> DriftRow | None:
        """Account for one comparison row; return its drift row, if it drifted."""
        drift, findings, within_tolerance = classify(row, insert_missing=self.insert_missing)
        if row.rec_rows == 0 and None not in row.key:
            self.items += 1  # a key only the sources know is an item too
        self.within_tolerance += within_tolerance
        for kind, count in findings:
            self._note(kind, count, row)
        if drift is not None:
            self._count(drift)
        return drift

    def _note(self, kind: str, count: int, row: ComparisonRow) -> None:
        self.finding_counts[kind] += count
        sample = self.finding_samples.setdefault(kind, [])
        if len(sample) < SAMPLE_SIZE:
            sample.append(
                {
                    "key": list(row.key),
                    "recorded": None if row.rec_rows == 0 else row.recorded,
                    "expected": row.expected,
                    "records": row.records,
                }
            )

    def _count(self, drift: DriftRow) -> None:
        size = abs(drift.delta)
        self.drifted += 1
        self.abs_drift += size
        self.distribution[delta_bucket(drift.delta)] += 1
        value = drift.value
        if value is not None:
            self.value_impact = (self.value_impact or Decimal(0)) + value
            self.abs_value_impact = (self.abs_value_impact or Decimal(0)) + abs(value)
        if self.keep is None or len(self.worst) < self.keep:
            self.worst.append(drift)
        if not self.groups_omitted:
            self._count_group(drift.group, size, value)

    def _count_group(self, name: Any, size: Decimal, value: Decimal | None) -> None:
        group = self.groups.get(name)
        if group is None:
            if len(self.groups) == MAX_GROUPS:  # memory must not grow with the items: stop here
                self.groups_omitted = True
                self.groups.clear()
                return
            group = self.groups[name] = [0, Decimal(0), None]
        group[0] += 1
        group[1] += size
        if value is not None:
            group[2] = (group[2] or Decimal(0)) + value

    def result(self) -> RuleResult:
        if self.groups_omitted:
            self.finding_counts["groups_omitted"] = MAX_GROUPS
            self.finding_samples["groups_omitted"] = []
        findings = tuple(
            finding(kind, count, self.finding_samples[kind])
            for kind, count in sorted(self.finding_counts.items(), key=lambda kv: list(FINDING_KINDS).index(kv[0]))
        )
        groups = tuple(
            GroupSummary(g, n, abs_drift, value)
            for g, (n, abs_drift, value) in sorted(self.groups.items(), key=lambda kv: (-kv[1][1], str(kv[0])))
        )
        distribution = tuple(sorted(self.distribution.items(), key=lambda kv: bucket_order(kv[0])))
        return RuleResult(
            self.name,
            self.key_columns,
            self.items,
            self.drifted,
            self.abs_drift,
            self.value_impact,
            self.abs_value_impact,
            tuple(self.worst),
            groups if any(g.group is not None for g in groups) else (),
            findings,
            distribution,
            self.within_tolerance,
        )


def finding(kind: str, count: int, sample: Sequence[dict[str, Any]]) -> Finding:
    """A finding of one of the FINDING_KINDS, with its severity and message."""
    severity, _, explanation = FINDING_KINDS[kind]
    return Finding(kind, severity, count, tuple(sample), f"{count} {explanation}")


def to_comparison_row(values: Sequence[Any], width: int) -> ComparisonRow:
    """A database row (k0..kn followed by the FIGURES columns) as a ComparisonRow."""
    recorded, rec_rows, rec_nulls, unit_value, group, expected, records, future, null_qty, within = values[width:]
    return ComparisonRow(
        tuple(values[:width]),
        as_decimal(recorded) or Decimal(0),
        int(rec_rows),
        int(rec_nulls or 0),
        as_decimal(unit_value),
        group,
        as_decimal(expected) or Decimal(0),
        int(records or 0),
        int(future or 0),
        int(null_qty or 0),
        int(within or 0),
    )


def as_decimal(value: Any) -> Decimal | None:
    """Exact Decimal for any numeric a driver returns (floats through their shortest repr)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)

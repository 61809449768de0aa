"""Check results as one JSON document, streamed: every drifted key is written as it arrives.

Shape (PRODUCT.md): {"rules": [{"name", "drift": [{"key", "recorded",
"expected", "delta", ...}], "items", "drifted", "within_tolerance", "abs_drift", "value_impact",
"abs_value_impact", "groups", "findings", "distribution"}], "checks": [...]}.
The summary fields follow the drift list because they are known only once it
has been streamed; JSON objects are unordered, so readers see no difference.
"""

from __future__ import annotations

from typing import Any, NotRequired, TextIO

from trueup.reconcile.check import CheckReport, CheckRun
from trueup.reconcile.checks import CheckResult
from trueup.reconcile.drift import DriftRow, Finding, RuleResult
from trueup.report.format import to_json
from trueup.schema import Document, Exact, KeyValues


class DriftEntry(Document):
    """One drifted key: `delta` = expected − recorded is the correction."""

    key: KeyValues
    recorded: Exact
    expected: Exact
    delta: Exact
    value: NotRequired[Exact | None]  # delta × unit_value, when the rule has a unit_value
    group: NotRequired[Any]  # when the rule has a group
    missing: NotRequired[bool]  # no recorded row yet (insert_missing rules)


class FindingEntry(Document):
    kind: str
    severity: str
    count: int
    message: str
    sample: list[dict[str, Any]]


class GroupEntry(Document):
    group: Any
    drifted: int
    abs_drift: Exact
    value_impact: Exact | None


class BucketEntry(Document):
    bucket: str
    keys: int


class RuleSummary(Document):
    items: int
    drifted: int
    within_tolerance: int
    abs_drift: Exact
    value_impact: Exact | None
    abs_value_impact: Exact | None
    groups: list[GroupEntry]
    findings: list[FindingEntry]
    distribution: list[BucketEntry]


class RuleDocument(RuleSummary):
    name: str
    drift: list[DriftEntry]


class CheckEntry(Document):
    name: str
    severity: str
    failing: int
    sample: list[dict[str, Any]]


class CheckDocument(Document):
    """What `trueup check --format json` prints and `POST /api/check` answers."""

    rules: list[RuleDocument]
    checks: list[CheckEntry]


def write_check(run: CheckRun, out: TextIO, limit: int | None = None) -> CheckReport:
    """Stream `run` to `out` as JSON, listing at most `limit` drifted keys per rule (all if None)."""
    out.write('{"rules": [')
    for index, scan in enumerate(run.scans()):
        out.write(("," if index else "") + "\n  {" + f'"name": {to_json(scan.rule.name)}, "drift": [')
        for count, drift in enumerate(scan):
            if limit is not None and count >= limit:
                continue
            out.write(("," if count else "") + "\n    " + to_json(drift_dict(drift)))
        summary = rule_summary(scan.result())
        out.write("\n  ], " + to_json(summary)[1:-1] + "}")
    out.write("\n], " + f'"checks": {to_json([check_dict(c) for c in run.checks()])}' + "}\n")
    return run.report()


def drift_dict(drift: DriftRow) -> DriftEntry:
    row: DriftEntry = {
        "key": list(drift.key),
        "recorded": drift.recorded,
        "expected": drift.expected,
        "delta": drift.delta,
    }
    if drift.unit_value is not None:
        row["value"] = drift.value
    if drift.group is not None:
        row["group"] = drift.group
    if drift.missing:
        row["missing"] = True
    return row


def rule_summary(result: RuleResult) -> RuleSummary:
    return {
        "items": result.items,
        "drifted": result.drifted,
        "within_tolerance": result.within_tolerance,
        "abs_drift": result.abs_drift,
        "value_impact": result.value_impact,
        "abs_value_impact": result.abs_value_impact,
        "groups": [
            {"group": g.group, "drifted": g.drifted, "abs_drift": g.abs_drift, "value_impact": g.value_impact}
            for g in result.groups
        ],
        "findings": [finding_dict(f) for f in result.findings],
        "distribution": [{"bucket": label, "keys": n} for label, n in result.distribution],
    }


def finding_dict(finding: Finding) -> FindingEntry:
    return {
        "kind": finding.kind,
        "severity": finding.severity,
        "count": finding.count,
        "message": finding.message,
        "sample": list(finding.sample),
    }


def check_dict(check: CheckResult) -> CheckEntry:
    return {"name": check.name, "severity": check.severity, "failing": check.failing, "sample": list(check.sample)}


def report_dict(report: CheckReport) -> CheckDocument:
    """A finished report as plain data (the same shape write_check streams)."""
    return {
        "rules": [{"name": r.name, "drift": [drift_dict(d) for d in r.worst], **rule_summary(r)} for r in report.rules],
        "checks": [check_dict(c) for c in report.checks],
    }

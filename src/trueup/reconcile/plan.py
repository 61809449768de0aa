"""A plan: the exact corrections a repair would make, with the values observed when it was made.

`make_plan()` runs the check engine and keeps every drifted key (or the worst
`limit`) as a `Correction`: set the recorded figure from `recorded` to
`expected`. Corrections are absolute, never `quantity - n`, so applying a plan
twice cannot deduct twice. A key with an error-severity finding (a negative
expected figure) is not corrected but listed as `left_out`, unless
`include_flagged`: writing what trueup itself flags as wrong takes a decision.
A plan saved with `save_plan()` can be applied later; the applying transaction
then refuses every key whose recorded or expected figure moved since (see
`trueup.reconcile.apply`).

    plan = make_plan(connection, config, rules=["diapers"], limit=100)
    plan.changes          # how many rows would be written
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, NotRequired

from pydantic import BaseModel, ConfigDict, ValidationError

from trueup.config import Config
from trueup.errors import ConfigError, UsageError
from trueup.reconcile.audit import now
from trueup.reconcile.check import CheckRun
from trueup.reconcile.drift import Finding, Flagged
from trueup.reconcile.query import EVERYTHING, Scope
from trueup.report.format import to_json
from trueup.schema import Document, Exact, KeyValues

PLAN_FORMAT = "trueup-plan/1"


class Correction(NamedTuple):
    key: tuple[Any, ...]
    recorded: Decimal  # as observed; 0 for a row to insert
    expected: Decimal
    missing: bool = False  # no row yet: the correction inserts one

    @property
    def delta(self) -> Decimal:
        return self.expected - self.recorded


class RulePlan(NamedTuple):
    rule: str
    table: str
    key_columns: tuple[str, ...]
    quantity: str
    corrections: tuple[Correction, ...]
    drifted: int  # all drifted keys, even those a limit left out
    left_out: tuple[Flagged, ...] = ()  # drifted keys with an error-severity finding, not corrected
    findings: tuple[Finding, ...] = ()


class Plan(NamedTuple):
    rules: tuple[RulePlan, ...]
    database: str  # the URL, password redacted
    config_sha256: str | None
    created_at: datetime
    scope: dict[str, Any]
    sha256: str | None = None  # of the file it was loaded from

    @property
    def changes(self) -> int:
        return sum(len(r.corrections) for r in self.rules)

    @property
    def left_out(self) -> int:
        return sum(len(r.left_out) for r in self.rules)

    @property
    def exit_code(self) -> int:
        """1 when the plan would change something or leaves flagged keys out, else 0."""
        return 1 if self.changes or self.left_out else 0

    @property
    def max_abs_delta(self) -> Decimal:
        return max((abs(c.delta) for r in self.rules for c in r.corrections), default=Decimal(0))


def make_plan(
    connection: Any,
    config: Config,
    *,
    database: str,
    rules: list[str] | None = None,
    scope: Scope = EVERYTHING,
    limit: int | None = None,
    include_flagged: bool = False,
) -> Plan:
    """Plan the corrections for the selected rules (all drifted keys, or the worst `limit` per rule)."""
    run = CheckRun(connection, config, rules=rules, scope=scope, keep=limit, with_checks=False)
    rule_plans = []
    for scan in run.scans():
        result = scan.result()
        recorded = config.rule(scan.rule.name).recorded  # as the config spells it, to compare plans later
        corrections, left_out = [], []
        for d in result.worst:
            if d.flags and not include_flagged:
                left_out.append(Flagged(d.key, d.recorded, d.expected, d.flags))
            else:
                corrections.append(Correction(d.key, d.recorded, d.expected, d.missing))
        shape = (recorded.table, tuple(recorded.key), recorded.quantity)
        rule_plans.append(
            RulePlan(scan.rule.name, *shape, tuple(corrections), result.drifted, tuple(left_out), result.findings)
        )
    described = {"keys": [list(k) for k in scope.keys], "where": scope.where, "limit": limit}
    described |= {"include_flagged": include_flagged}
    return Plan(tuple(rule_plans), database, config.sha256, now(), described)


# -- files -------------------------------------------------------------------------------------


class _CorrectionFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: list[Any]
    recorded: Decimal
    expected: Decimal
    missing: bool = False


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    table: str
    key_columns: list[str]
    quantity: str
    drifted: int
    corrections: list[_CorrectionFile]


class _PlanFile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: str
    created_at: datetime
    database: str
    config_sha256: str | None
    scope: dict[str, Any]
    rules: list[_RuleFile]


class CorrectionEntry(Document):
    key: KeyValues
    recorded: Exact
    expected: Exact
    delta: Exact
    missing: NotRequired[bool]


class FlaggedEntry(Document):
    """A drifted key left out for an error finding: why (its findings), and what would be written."""

    key: KeyValues
    recorded: Exact
    expected: Exact
    delta: Exact
    findings: list[str]


class PlannedFinding(Document):
    kind: str
    severity: str
    count: int
    message: str


class RulePlanEntry(Document):
    name: str
    table: str
    key_columns: list[str]
    quantity: str
    drifted: int
    changes: int
    abs_delta: Exact
    corrections: list[CorrectionEntry]
    left_out: list[FlaggedEntry]
    findings: list[PlannedFinding]


class PlanDocument(Document):
    """What `trueup plan --format json` prints and a plan file holds; the service leaves out `database`."""

    format: str
    created_at: str
    database: NotRequired[str]
    config_sha256: str | None
    scope: dict[str, Any]
    changes: int
    rules: list[RulePlanEntry]


def plan_document(plan: Plan) -> PlanDocument:
    """The plan as plain data: what `save_plan` writes and `plan --format json` prints."""
    return {
        "format": PLAN_FORMAT,
        "created_at": plan.created_at.isoformat(),
        "database": plan.database,
        "config_sha256": plan.config_sha256,
        "scope": plan.scope,
        "changes": plan.changes,
        "rules": [
            {
                "name": r.rule,
                "table": r.table,
                "key_columns": list(r.key_columns),
                "quantity": r.quantity,
                "drifted": r.drifted,
                "changes": len(r.corrections),
                "abs_delta": sum((abs(c.delta) for c in r.corrections), Decimal(0)),
                "corrections": [correction_dict(c) for c in r.corrections],
                "left_out": [flagged_dict(f) for f in r.left_out],
                "findings": [
                    {"kind": f.kind, "severity": f.severity, "count": f.count, "message": f.message} for f in r.findings
                ],
            }
            for r in plan.rules
        ],
    }


def correction_dict(correction: Correction) -> CorrectionEntry:
    entry: CorrectionEntry = {
        "key": list(correction.key),
        "recorded": correction.recorded,
        "expected": correction.expected,
        "delta": correction.delta,
    }
    if correction.missing:
        entry["missing"] = True
    return entry


def flagged_dict(flagged: Flagged) -> FlaggedEntry:
    """A left-out key as plain data: why it was not written (its findings) and what would be."""
    return {
        "key": list(flagged.key),
        "recorded": flagged.recorded,
        "expected": flagged.expected,
        "delta": flagged.delta,
        "findings": list(flagged.findings),
    }


def save_plan(plan: Plan, path: Path) -> None:
    try:
        path.write_text(to_json(plan_document(plan)) + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot write the plan: {error.strerror}") from None


def load_plan(path: Path) -> Plan:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the plan: {error.strerror}") from None
    return read_plan(raw, str(path))


def read_plan(raw: bytes, source: str) -> Plan:
    """A saved plan from its JSON text (a file's bytes, or an API request's `plan`); `source` names it in errors."""
    try:
        document = _PlanFile.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{source}: not a plan file (invalid JSON: {error})") from None
    except ValidationError as error:
        first = error.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{source}: not a valid plan file: {place}: {first['msg']}") from None
    if document.format != PLAN_FORMAT:
        raise UsageError(f"{source}: unsupported plan format {document.format!r} (expected {PLAN_FORMAT})")
    rules = tuple(
        RulePlan(
            r.name,
            r.table,
            tuple(r.key_columns),
            r.quantity,
            tuple(Correction(tuple(c.key), c.recorded, c.expected, c.missing) for c in r.corrections),
            r.drifted,
        )
        for r in document.rules
    )
    digest = hashlib.sha256(raw).hexdigest()
    return Plan(rules, document.database, document.config_sha256, document.created_at, document.scope, digest)


def check_plan_fits(plan: Plan, config: Config, database: str, source: str) -> None:
    """Refuse a saved plan made for another database or another shape of rule."""
    if plan.database != database:
        raise UsageError(f"{source}: the plan was made for {plan.database}, not {database}")
    for rule_plan in plan.rules:
        rule = config.rule(rule_plan.rule)
        shape = (rule.recorded.table, tuple(rule.recorded.key), rule.recorded.quantity)
        if shape != (rule_plan.table, rule_plan.key_columns, rule_plan.quantity):
            raise ConfigError(
                f"{source}: rule {rule.name!r} has changed since the plan was made "
                f"(recorded table, key or quantity differ); make a new plan"
            )

"""`check`: measure each rule's drift in the database and stream it out.

A `CheckRun` resolves every selected rule against the schema first (so a
config mistake stops the run before any output), then hands out one
`RuleScan` per rule. Iterating a scan runs the rule's comparison query with a
streaming cursor and yields its `DriftRow`s worst first; `scan.result()`
gives the rule's totals and findings once the stream is drained. Renderers
drive the stream, so the JSON writer can emit every drifted key while memory
stays flat.

    with trueup.db.connect(engine) as connection:
        run = CheckRun(connection, config)
        for scan in run.scans():
            for drift in scan:
                ...
        report = run.report()          # -> CheckReport, exit_code 0 or 1
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Config, Rule
from trueup.db import dialect_for, driver_message
from trueup.errors import DatabaseError, UsageError
from trueup.reconcile import query
from trueup.reconcile.checks import CheckResult, run_check
from trueup.reconcile.diagnose import mostly_drifted, mostly_drifted_finding
from trueup.reconcile.drift import DriftRow, RuleResult, Tally, to_comparison_row
from trueup.reconcile.resolve import recorded_key_is_unique, resolve_rule
from trueup.reconcile.target import Target


class CheckReport(NamedTuple):
    rules: tuple[RuleResult, ...]
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Nothing drifted and no error-severity check failed."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """1 when any rule drifted or has an error-severity finding, or an error-severity check failed."""
        found = any(r.fails_run for r in self.rules) or any(c.fails_run for c in self.checks)
        return 1 if found else 0


class Observer(Protocol):
    """Progress hooks; the CLI draws a progress display from them, the library never prints."""

    def rule_started(self, name: str, index: int, total: int) -> None: ...

    def rule_finished(self, result: RuleResult) -> None: ...


class _Silent:
    def rule_started(self, name: str, index: int, total: int) -> None:
        pass

    def rule_finished(self, result: RuleResult) -> None:
        pass


class RuleScan:
    """One rule's drift, streamed worst first; `result()` drains the rest and totals it."""

    def __init__(
        self, connection: Connection, rule: Rule, *, scope: query.Scope = query.EVERYTHING, keep: int | None = 20
    ):
        self.rule = rule
        self._connection = connection
        self._scope = scope
        self._keep = keep
        self._result: RuleResult | None = None
        self._rows = self._stream()

    def __iter__(self) -> Iterator[DriftRow]:
        return self._rows

    def result(self) -> RuleResult:
        for _ in self._rows:
            pass
        assert self._result is not None
        return self._result

    def _stream(self) -> Iterator[DriftRow]:
        connection, rule = self._connection, self.rule
        dialect = dialect_for(connection)
        width = len(rule.recorded.key)
        try:
            items = connection.execute(query.recorded_count(rule, connection.dialect, self._scope)).scalar_one()
            tally = Tally(
                rule.name,
                tuple(rule.recorded.key),
                recorded_items=items,
                insert_missing=rule.recorded.insert_missing,
                keep=self._keep,
            )
            # A hook's named keys give a row or so each: the portable shape, executed plainly so its compiled
            # form is reused from SQLAlchemy's cache (streaming compiles it every time), with no catalog read.
            named = bool(self._scope.keys)
            joined = not named and dialect.joins_comparison and recorded_key_is_unique(connection, rule)
            comparison = query.comparison(rule, connection.dialect, dialect, self._scope, joined=joined)
            rows = connection.execute(comparison) if named else dialect.stream(connection, comparison)
            for values in rows:
                drift = tally.add(to_comparison_row(values, width))
                if drift is not None:
                    yield drift
            result = tally.result()
            astray = result.drifted + sum(f.count for f in result.findings if f.kind == "missing_row")
            if self._scope.is_everything and mostly_drifted(astray, result.items):
                warning = mostly_drifted_finding(connection, rule)
                result = result._replace(findings=result.findings + ((warning,) if warning else ()))
        except DBAPIError as error:
            raise DatabaseError(f"rule {rule.name!r}: the comparison query failed: {driver_message(error)}") from None
        self._result = result


def typed_scope(connection: Connection, rule: Rule, scope: query.Scope) -> query.Scope:
    """`scope` with its keys (often text from the command line) typed like the rule's key columns."""
    if not scope.keys:
        return scope
    width = len(rule.recorded.key)
    for key in scope.keys:
        if len(key) != width:
            columns = ",".join(rule.recorded.key)
            raise UsageError(f"rule {rule.name!r} has a {width}-column key ({columns}); got {','.join(map(str, key))}")
    try:
        keys = tuple(Target.of(rule).coerce_keys(connection, scope.keys))
    except ValueError as error:
        raise UsageError(f"rule {rule.name!r}: --key {error}") from None
    return replace(scope, keys=keys)


def typed_key(connection: Connection, config: Config, rule: str, key: tuple[Any, ...]) -> tuple[Any, ...]:
    """One key of `rule` typed as the database returns it (what sync's history stores)."""
    resolved = resolve_rule(connection, config.rule(rule))
    return typed_scope(connection, resolved, query.Scope(keys=(key,))).keys[0]


class CheckRun:
    """Checks the selected rules and custom checks of a config over one connection."""

    def __init__(
        self,
        connection: Connection,
        config: Config,
        *,
        rules: list[str] | None = None,
        scope: query.Scope = query.EVERYTHING,
        keep: int | None = 20,
        observer: Observer | None = None,
        with_checks: bool = True,
    ):
        label = str(config.path) if config.path else "config"
        self.connection = connection
        self.rules = [resolve_rule(connection, rule, label) for rule in config.select_rules(rules)]
        self.custom_checks = list(config.checks) if with_checks else []
        self._label = label
        self._scopes = {rule.name: typed_scope(connection, rule, scope) for rule in self.rules}
        self._keep = keep
        self._observer = observer or _Silent()
        self._results: list[RuleResult] = []
        self._check_results: list[CheckResult] | None = None
        self._scans = self._scan_all()

    def scans(self) -> Iterator[RuleScan]:
        """One scan per rule, in config order; each is drained before the next is made."""
        return self._scans

    def checks(self) -> list[CheckResult]:
        if self._check_results is None:
            self._check_results = [run_check(self.connection, c, self._label) for c in self.custom_checks]
        return self._check_results

    def report(self) -> CheckReport:
        """Everything, running whatever has not run yet."""
        for _ in self._scans:
            pass
        return CheckReport(tuple(self._results), tuple(self.checks()))

    def _scan_all(self) -> Iterator[RuleScan]:
        for index, rule in enumerate(self.rules):
            self._observer.rule_started(rule.name, index, len(self.rules))
            scan = RuleScan(self.connection, rule, scope=self._scopes[rule.name], keep=self._keep)
            yield scan
            result = scan.result()
            self._results.append(result)
            self._observer.rule_finished(result)

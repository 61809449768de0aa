"""Guards as runs: plan, install, remove and list the triggers of a rule.

An install is a run of kind `guard` in `trueup_runs` (so `trueup runs` lists
it) with one change row per trigger (op `trigger`) whose row image holds the
statements that remove it. `trueup undo RUN` and `remove()` run exactly those
statements, so nothing else is touched. The run's `plan_sha256` is the hash
of the DDL: an install whose DDL matches the standing guard is a no-op, one
whose DDL differs (the rule changed) replaces it.

PostgreSQL and SQLite install in one transaction. MySQL commits around every
CREATE TRIGGER, so there the run and the statements that undo it are
committed *first* (status `installing`), then the triggers are created, then
the status becomes `installed`: a killed install is listed as `incomplete`
and `remove` (every drop is IF EXISTS) or a new install clears it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Config
from trueup.db import create_missing, dialect_for, driver_message, user_sql
from trueup.errors import ConfigError, DatabaseError, NotFoundError
from trueup.guard import commit, violations
from trueup.guard.ddl import Trigger, Watched, check_mode, ddl_sha256, probe, stem, triggers, watched
from trueup.reconcile import audit, queue
from trueup.reconcile.guard import confirm_writes
from trueup.reconcile.resolve import resolve_rule
from trueup.reconcile.undo import undo_run

KIND = "guard"
OP = "trigger"


class Installed(NamedTuple):
    """A guard standing in the database (an install run not undone)."""

    run_id: int
    rule: str
    mode: str
    tables: tuple[str, ...]
    tool_version: str | None
    config_sha256: str | None
    ddl_sha256: str | None
    complete: bool  # False: a MySQL install killed between its triggers


class Outcome(NamedTuple):
    rule: str
    mode: str
    run_id: int | None  # None: nothing was done
    triggers: int
    replaced: int | None = None  # the guard run it replaced
    message: str = ""


def plan(connection: Connection, config: Config, rule_name: str, mode: str) -> list[Trigger]:
    """The triggers `install` would create, resolved against the live schema; nothing is written."""
    backend = connection.dialect.name
    check_mode(backend, mode)
    rule = resolve_rule(connection, config.rule(rule_name), config._label())
    schema = _schema(connection)
    found = triggers(rule, backend, schema, config._label(), mode)
    _probe_lookups(connection, watched(rule, config._label(), mode))
    if mode == "capture" or schema is None:
        return found
    return [*found, commit.commit_trigger(rule, f"{stem(rule.name)}_commit", schema, mode)]


def install(
    connection: Connection,
    config: Config,
    rule_name: str,
    mode: str,
    *,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    triggered_by: str = "cli",
) -> Outcome:
    found = plan(connection, config, rule_name, mode)
    sha = ddl_sha256(found)
    queue.ensure_table(connection)
    audit.ensure_tables(connection)
    if mode != "capture":
        create_missing(connection, commit.metadata)
        create_missing(connection, violations.metadata)
    standing = _standing(connection, rule_name)
    if standing is not None and standing.complete and standing.ddl_sha256 == sha and standing.mode == mode:
        return Outcome(rule_name, mode, None, 0, message=f"already installed by run {standing.run_id}; nothing to do")
    what = f"install guard {mode} on rule {rule_name!r}"
    confirm_writes(connection.engine.url, config.database.production_pattern, what, yes=yes, confirm=confirm)
    if standing is not None:
        undo_run(connection, standing.run_id, triggered_by=triggered_by)
    fields = {"kind": KIND, "rule": rule_name, "triggered_by": triggered_by}
    fields |= {"config_sha256": config.sha256, "plan_sha256": sha}
    dialect = dialect_for(connection)
    try:
        if connection.dialect.name == "mysql":  # DDL commits: record first, so a killed install can be removed
            with dialect.write_transaction(connection) as tx:
                run_id = _record(tx, found, mode, fields)
            _create(connection, found)
            with dialect.write_transaction(connection) as tx:
                audit.finish_run(tx, run_id, status="installed", inserted=len(found))
        else:
            with dialect.write_transaction(connection) as tx:
                run_id = _record(tx, found, mode, fields)
                _create(tx, found)
                audit.finish_run(tx, run_id, status="installed", inserted=len(found))
    except DBAPIError as error:
        raise DatabaseError(f"guard install failed: {driver_message(error)}") from None
    return Outcome(rule_name, mode, run_id, len(found), standing.run_id if standing else None)


def remove(
    connection: Connection,
    config: Config,
    rule_name: str,
    *,
    yes: bool = False,
    confirm: Callable[[str], bool] | None = None,
    triggered_by: str = "cli",
) -> Outcome:
    """Drop the standing guard of `rule_name` (undo its install run)."""
    standing = _standing(connection, rule_name)
    if standing is None:
        raise NotFoundError(f"rule {rule_name!r} has no guard installed (trueup guard status lists them)")
    what = f"remove the guard of rule {rule_name!r}"
    confirm_writes(connection.engine.url, config.database.production_pattern, what, yes=yes, confirm=confirm)
    result = undo_run(connection, standing.run_id, triggered_by=triggered_by)
    return Outcome(rule_name, standing.mode, result.run_id, len(result.triggers), standing.run_id)


def status(connection: Connection) -> list[Installed]:
    """Every standing guard, oldest first."""
    if not sa.inspect(connection).has_table(audit.runs.name):
        return []
    r, c = audit.runs.c, audit.changes.c
    query = (
        sa.select(r.id, r.rule, r.tool_version, r.config_sha256, r.plan_sha256, r.status, c.table_name, c.row_image)
        .select_from(audit.runs.join(audit.changes, c.run_id == r.id))
        .where(r.kind == KIND, r.undone_by.is_(None), c.op == OP)
        .order_by(r.id, c.id)
    )
    found: dict[int, Installed] = {}
    for run_id, rule, version, config_sha, sha, state, table, image in connection.execute(query):
        seen = found.get(run_id)
        tables = tuple(dict.fromkeys((*(seen.tables if seen else ()), table)))
        mode = json.loads(image)["mode"]
        found[run_id] = Installed(run_id, rule, mode, tables, version, config_sha, sha, state == "installed")
    return list(found.values())


def captures(connection: Connection, rule_name: str) -> bool:
    """A complete capture guard stands for the rule: its triggers queue every key a change touches."""
    standing = _standing(connection, rule_name)
    return standing is not None and standing.complete and standing.mode == "capture"


def changed_since(connection: Connection, config: Config, guard: Installed) -> str:
    """Whether the rule as configured now would install other DDL: "no", "yes" or why it cannot tell."""
    if guard.rule not in {r.name for r in config.rules}:
        return "rule not in config"
    return "no" if ddl_sha256(plan(connection, config, guard.rule, guard.mode)) == guard.ddl_sha256 else "yes"


def _standing(connection: Connection, rule_name: str) -> Installed | None:
    return next((g for g in status(connection) if g.rule == rule_name), None)


def _record(tx: Connection, found: list[Trigger], mode: str, fields: dict[str, object]) -> int:
    run_id = audit.start_run(tx, **fields)  # type: ignore[arg-type]
    rows = [
        {
            "run_id": run_id,
            "rule": fields["rule"],
            "table_name": t.table,
            "key_columns": "[]",
            "quantity_column": "",
            "key": json.dumps([t.name]),
            "op": OP,
            "row_image": json.dumps({"mode": mode, "trigger": t.name, "event": t.event, "drop": list(t.drop)}),
        }
        for t in found
    ]
    tx.execute(audit.changes.insert(), rows)
    return run_id


def _create(connection: Connection, found: list[Trigger]) -> None:
    # The driver reads `%` as a placeholder even with no parameters (PL/pgSQL's `%TYPE`): doubled, it is one.
    percent = connection.dialect.paramstyle in ("format", "pyformat")
    for trigger in found:
        for statement in trigger.create:
            connection.exec_driver_sql(statement.replace("%", "%%") if percent else statement)


def _probe_lookups(connection: Connection, tables: list[Watched]) -> None:
    """Each lookup run once (LIMIT 0): a mistake in its SQL is refused naming its place."""
    for table in tables:
        if table.lookup is None:
            continue
        try:
            connection.execute(user_sql(probe(table, connection.dialect.identifier_preparer))).all()
        except DBAPIError as error:
            connection.rollback()
            message = f"{table.lookup.place}: the database rejected the lookup: {driver_message(error)}"
            raise ConfigError(message) from None


def _schema(connection: Connection) -> str | None:
    """PostgreSQL: the schema the queue lives in, named in the trigger functions."""
    if connection.dialect.name != "postgresql":
        return None
    return connection.execute(sa.text("SELECT current_schema()")).scalar_one()

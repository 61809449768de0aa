"""trueup: make inventory add up.

The Python API mirrors the CLI:

    import trueup
    report = trueup.check("trueup.toml")          # -> CheckReport
    for rule in report.rules:
        print(rule.name, rule.drifted, rule.abs_drift)
    plan = trueup.plan("trueup.toml", rules=["diapers"])
    result = trueup.apply("trueup.toml", yes=True)   # -> ApplyResult; result.run_id
    trueup.undo(result.run_id, "trueup.toml")
    trueup.sync("trueup.toml", rule="storefront", keys=[(1, 10)], apply=True, triggered_by="sale")
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from trueup.config import Config
    from trueup.reconcile.apply import ApplyResult
    from trueup.reconcile.check import CheckReport
    from trueup.reconcile.plan import Plan
    from trueup.reconcile.sync import RoundResult
    from trueup.reconcile.undo import UndoResult


def check(
    config: Config | str | Path = "trueup.toml",
    *,
    database: str | None = None,
    rules: list[str] | None = None,
    keep: int | None = 20,
) -> CheckReport:
    """Check the config's rules (all, or those named) and custom checks; keep the worst `keep` keys per rule."""
    from trueup.reconcile.check import CheckRun

    with _session(config, database) as (cfg, connection):
        return CheckRun(connection, cfg, rules=rules, keep=keep, with_checks=not rules).report()


def plan(
    config: Config | str | Path = "trueup.toml",
    *,
    database: str | None = None,
    rules: list[str] | None = None,
    keys: list[tuple[Any, ...]] | None = None,
    where: str | None = None,
    limit: int | None = None,
    include_flagged: bool = False,
) -> Plan:
    """The corrections a repair would make (the dry run); `trueup.reconcile.plan.save_plan` writes it.

    Keys with an error-severity finding are listed in each rule's `left_out`, unless `include_flagged`.
    """
    from trueup.db import redact
    from trueup.reconcile.plan import make_plan
    from trueup.reconcile.query import Scope

    with _session(config, database) as (cfg, connection):
        scope = Scope(keys=tuple(keys or ()), where=where)
        database = redact(connection.engine.url)
        return make_plan(
            connection, cfg, database=database, rules=rules, scope=scope, limit=limit, include_flagged=include_flagged
        )


def apply(config: Config | str | Path = "trueup.toml", *, database: str | None = None, **options: Any) -> ApplyResult:
    """Correct the drift (or apply a saved `plan=`), back up, write in one transaction with an audit trail, verify.

    Keyword options are those of `trueup.reconcile.apply.apply`: rules, scope, limit, plan,
    limits, include_flagged, backup_dir, yes, confirm, triggered_by, lock_timeout, and chunk_size
    (with progress) to write key-ordered chunks each in a transaction of its own (see `resume`).
    """
    from trueup.reconcile.apply import apply as apply_repair

    with _session(config, database) as (cfg, connection):
        return apply_repair(connection, cfg, connection.engine.url, **options)


def resume(
    run_id: int, config: Config | str | Path = "trueup.toml", *, database: str | None = None, **options: Any
) -> ApplyResult:
    """Finish an interrupted chunked apply: exactly the chunks not yet committed, their corrections recomputed.

    Keyword options are those of `trueup.reconcile.apply.resume`: yes, confirm, triggered_by, lock_timeout, progress.
    """
    from trueup.reconcile.apply import resume as resume_repair

    with _session(config, database) as (cfg, connection):
        return resume_repair(connection, cfg, connection.engine.url, run_id, **options)


def undo(
    run_id: int, config: Config | str | Path = "trueup.toml", *, database: str | None = None, **options: Any
) -> UndoResult:
    """Put back exactly what run `run_id` changed (options: force, skip_conflicts, triggered_by)."""
    from trueup.reconcile.undo import undo_run

    with _session(config, database) as (_, connection):
        return undo_run(connection, run_id, **options)


def sync(
    config: Config | str | Path = "trueup.toml",
    *,
    rule: str,
    keys: list[tuple[Any, ...]],
    apply: bool = False,
    triggered_by: str = "hook",
    database: str | None = None,
    **options: Any,
) -> RoundResult:
    """Check (and with `apply` repair) just these keys of `rule`: call it after each sale or purchase.

    If a round of the rule is running, the keys are queued for it (in `trueup_dirty`) and the result's
    status is `queued`: the running round takes them before it ends. Repairs stay within the config's
    `[sync]` limits (1,000 rows, 5 % of the rule's items) unless `max_changes=` says otherwise.
    Engines are kept per database URL between calls, so a hook pays for a query, not a connection pool.
    More keyword options are those of `trueup.reconcile.sync.SyncOptions` (wait, max_changes, yes, ...).
    """
    from trueup.config import Config, load_config
    from trueup.reconcile.sync import SyncOptions, run_round

    cfg = config if isinstance(config, Config) else load_config(config)
    engine = _engine(cfg.database_url(database))
    sync_options = SyncOptions(apply=apply, triggered_by=triggered_by, **options)
    return run_round(engine, cfg, rule, sync_options, keys=keys)


_ENGINES: dict[str, Any] = {}


def close() -> None:
    """Close the connections `sync` keeps between calls (e.g. before a test database is dropped)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def _engine(url: str) -> Any:
    from trueup.db import open_engine

    if url not in _ENGINES:
        _ENGINES[url] = open_engine(url)
    return _ENGINES[url]


@contextmanager
def _session(config: Config | str | Path, database: str | None) -> Iterator[tuple[Config, Connection]]:
    from trueup.config import Config, load_config
    from trueup.db import connect, open_engine

    cfg = config if isinstance(config, Config) else load_config(config)
    engine = open_engine(cfg.database_url(database))
    try:
        with connect(engine) as connection:
            yield cfg, connection
    finally:
        engine.dispose()

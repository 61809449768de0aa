"""The check at commit (PostgreSQL, `--mode alarm|enforce`): each touched key derived again, once.

The row triggers of an alarm or enforce guard (rendered by `trueup.guard.ddl`)
note each key a statement touches in `trueup_touched`, keyed by the
transaction id, with `ON CONFLICT DO NOTHING`: however many rows of a
transaction touch a key, the table gains one row for it. On that table stands
one deferrable, initially deferred CONSTRAINT TRIGGER per rule, so at COMMIT
each noted key is checked exactly once per transaction:

1. the note is deleted (the table stays empty between transactions);
2. the rule's comparison for that one key is run: the very query `trueup
   check` runs (`trueup.reconcile.query.comparison`), scoped to the key, so the
   guard and a check can never disagree; a key whose figures differ beyond the
   rule's tolerance, and that has a recorded row (or the rule inserts missing
   ones), is a violation;
3. enforce raises SQLSTATE `TU001` (class `TU`, trueup's own), naming the rule,
   the key, the recorded and the expected figure, and the transaction rolls
   back whole; alarm inserts a row in `trueup_violations` and lets it commit.

The check reads what the committing transaction sees (under READ COMMITTED,
everything committed so far plus its own writes); a concurrent writer of the
same key waits on the cached figure's row lock, so it cannot slip in between.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from trueup.config import Rule
from trueup.db import dialect_for_name, quote_name
from trueup.guard.ddl import TOUCHED, Trigger, plpgsql_body
from trueup.guard.violations import VIOLATIONS
from trueup.names import join_name, split_name
from trueup.reconcile.query import Scope, comparison

SQLSTATE = "TU001"

metadata = sa.MetaData()
touched = sa.Table(
    TOUCHED,
    metadata,
    sa.Column("txid", sa.BigInteger, primary_key=True),
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),
    prefixes=["UNLOGGED"],  # a note that lives for one transaction: no WAL for it
)


def commit_trigger(rule: Rule, name: str, schema: str, mode: str) -> Trigger:
    """The constraint trigger (and its function) that checks `rule`'s touched keys at commit."""
    q = _quoted
    prep = _PG.identifier_preparer
    qualified = lambda path: q(path if len(split_name(path)) > 1 else join_name([schema, path]))  # noqa: E731
    variables = [f"trueup_k{i}" for i in range(len(rule.recorded.key))]
    declare = " ".join(
        f"{v} {qualified(rule.recorded.table)}.{quote_name(prep, split_name(c)[-1])}%TYPE "
        f":= (NEW.{quote_name(prep, 'key')}::jsonb) ->> {i};"
        for i, (v, c) in enumerate(zip(variables, rule.recorded.key, strict=True))
    )
    function = q(join_name([schema, name]))
    on = q(join_name([schema, TOUCHED]))
    rule_literal = _literal(rule.name)
    create = (
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
        f"SECURITY DEFINER SET search_path = pg_catalog, {quote_name(prep, schema)}, pg_temp "
        "AS "
        + plpgsql_body(
            rule.name,
            f"DECLARE {declare} trueup_recorded numeric; trueup_expected numeric; BEGIN "
            f'DELETE FROM {on} WHERE "txid" = NEW."txid" AND "rule" = NEW."rule" AND "key" = NEW."key"; '
            f"SELECT q.recorded, q.expected INTO trueup_recorded, trueup_expected "
            f"FROM ({_one_key(rule, variables)}) q WHERE {_violates(rule)}; "
            f"IF FOUND THEN {_verdict(mode, rule_literal, schema)} END IF; RETURN NULL; END",
        ),
        f"CREATE CONSTRAINT TRIGGER {quote_name(prep, name)} AFTER INSERT ON {on} "
        f'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW."rule" = {rule_literal}) '
        f"EXECUTE FUNCTION {function}()",
    )
    drop = (f"DROP TRIGGER IF EXISTS {quote_name(prep, name)} ON {on}", f"DROP FUNCTION IF EXISTS {function}()")
    return Trigger(name, rule.recorded.table, "commit", create, drop)


def _one_key(rule: Rule, variables: Sequence[str]) -> str:
    """The rule's comparison query scoped to the key held in the PL/pgSQL `variables`."""
    scope = Scope(keys=[tuple(sa.literal_column(v) for v in variables)])
    query = comparison(rule, _PG, dialect_for_name("postgresql"), scope)
    return str(query.compile(dialect=_PG, compile_kwargs={"literal_binds": True}))


def _violates(rule: Rule) -> str:
    """A comparison row that `check` would report as drift (see `trueup.reconcile.drift.classify`)."""
    has_row = "q.rec_rows >= 0" if rule.recorded.insert_missing else "q.rec_rows = 1"
    return f"{has_row} AND q.expected IS DISTINCT FROM q.recorded AND q.within = 0"


def _verdict(mode: str, rule_literal: str, schema: str) -> str:
    if mode == "enforce":
        return (
            f"RAISE EXCEPTION USING ERRCODE = '{SQLSTATE}', MESSAGE = "
            f"'trueup guard: rule ' || {rule_literal} || ', key ' || NEW.\"key\" || ': recorded ' "
            "|| coalesce(trueup_recorded::text, 'none') || ', expected ' || coalesce(trueup_expected::text, 'none'), "
            "HINT = 'update the cached figure in the same transaction as its records';"
        )
    return (
        f"INSERT INTO {_quoted(join_name([schema, VIOLATIONS]))} "
        '("rule", "key", "recorded", "expected", "application_name", "db_user", "client_addr", "at", "txid") '
        'VALUES (NEW."rule", NEW."key", trueup_recorded, trueup_expected, '
        "current_setting('application_name', true), session_user, host(inet_client_addr()), "
        "(now() AT TIME ZONE 'UTC'), NEW.\"txid\");"
    )


def _quoted(path: str) -> str:
    return ".".join(quote_name(_PG.identifier_preparer, p) for p in split_name(path))


def _literal(value: str) -> str:
    return str(sa.literal(value).compile(dialect=_PG, compile_kwargs={"literal_binds": True}))


_PG = postgresql.dialect()

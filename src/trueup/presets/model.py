"""A preset as plain data: the rules and checks that hold in one application's own schema.

Identifier fields (`table`, `key`, `quantity`) hold the application's names as they are:
trueup quotes them for each database. SQL fragments (`from`, `where`, a check's `sql`) are
SQL, so a name in them that needs quoting is written in braces, `{tabStock Ledger Entry}`,
and quoted for the target database when the preset is written out (see `trueup.presets`).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class PresetRule(NamedTuple):
    name: str
    guards: str  # what the rule guards, one line (README and the written comment)
    read_from: tuple[str, ...]  # the application's source files it was read from
    tables: tuple[str, ...]  # every table it reads: with --database, missing ones skip the rule
    recorded: dict[str, Any]
    expected: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()


class PresetCheck(NamedTuple):
    name: str
    guards: str
    read_from: tuple[str, ...]
    tables: tuple[str, ...]
    sql: str
    severity: str = "error"
    notes: tuple[str, ...] = ()


class Preset(NamedTuple):
    name: str
    application: str
    databases: tuple[str, ...]  # SQLAlchemy backend families it runs on, its default first
    rules: tuple[PresetRule, ...]
    checks: tuple[PresetCheck, ...] = ()
    left_out: tuple[str, ...] = ()  # figures not checked, each with why


def source(key: list[str], quantity: str, *, sign: int = 1, where: str | None = None, **origin: str) -> dict[str, Any]:
    """One `[[rules.expected]]` entry; `origin` is `table="…"` or `from_="…"` (SQL, names in braces)."""
    entry: dict[str, Any] = {name.rstrip("_"): value for name, value in origin.items()}
    entry |= {"key": key, "quantity": quantity}
    if sign != 1:
        entry["sign"] = sign
    if where is not None:
        entry["where"] = where
    return entry


def difference(key: list[str], added: str, taken: str, *, where: str, **origin: str) -> tuple[dict[str, Any], ...]:
    """Two sources on the same records: their `added` column minus their `taken` column."""
    return (
        source(key, added, where=where, **origin),
        source(key, taken, sign=-1, where=where, **origin),
    )

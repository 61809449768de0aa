"""The rules that hold in the schemas of known applications, written out as a commented trueup.toml.

Each application is one module of plain data (`erpnext`, `odoo`, `saleor`, `medusa`, `spree`):
a `Preset` whose rules and checks each cite the file of the application's source they were
read from. `preset_config()` writes one as TOML for one database kind. Names in identifier
fields are written as they are (trueup quotes them when it builds SQL); names inside SQL
fragments are written `{tabBin}` in the data and quoted here by the target database's own
rules, so `FROM {tabMaterial Request} mr` becomes ``FROM `tabMaterial Request` mr`` on MariaDB
and `FROM "tabMaterial Request" mr` on PostgreSQL.

With a connection, a rule or check that reads a table the database lacks is left out, and
`PresetConfig.skipped` says which and why (also written as comments into the file).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection

from trueup.db import quote_name, redact
from trueup.errors import UsageError
from trueup.presets import erpnext, medusa, odoo, saleor, spree
from trueup.presets.model import Preset, PresetCheck, PresetRule

PRESETS: dict[str, Preset] = {
    p.name: p for p in (erpnext.PRESET, odoo.PRESET, saleor.PRESET, medusa.PRESET, spree.PRESET)
}
Entry = TypeVar("Entry", PresetRule, PresetCheck)
_DIALECTS = {"postgresql": postgresql.dialect(), "mysql": mysql.dialect(), "sqlite": sqlite.dialect()}
_DATABASE_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}
_EXAMPLE_URLS = {
    "postgresql": "postgresql://USER:${DB_PASSWORD}@localhost/DATABASE",
    "mysql": "mysql://USER:${DB_PASSWORD}@localhost/DATABASE",
    "sqlite": "sqlite:///DATABASE.sqlite3",
}


class PresetConfig(NamedTuple):
    text: str
    rules: tuple[str, ...]  # the rules written
    checks: tuple[str, ...]
    skipped: tuple[str, ...]  # "rule 'x': table `y` is not in the database", one per left-out rule or check


def preset_config(name: str, url: str | None = None, connection: Connection | None = None) -> PresetConfig:
    """The commented trueup.toml of preset `name`, for `connection`'s database (or the application's default)."""
    preset = PRESETS[name]
    family = _family(connection.dialect.name) if connection is not None else preset.databases[0]
    if family not in preset.databases:
        kinds = " or ".join(_DATABASE_NAMES[d] for d in preset.databases)
        raise UsageError(f"{preset.application} runs on {kinds}; --database is {_DATABASE_NAMES.get(family, family)}")
    tables = _tables(connection) if connection is not None else None
    rules, skipped_rules = _present(preset.rules, "rule", tables)
    checks, skipped_checks = _present(preset.checks, "check", tables)
    skipped = skipped_rules + skipped_checks
    quote = _Quoter(
        _DIALECTS[family].identifier_preparer if connection is None else connection.dialect.identifier_preparer
    )
    parts = [_header(preset, family, url, skipped)]
    parts += [_rule(rule, quote) for rule in rules]
    parts += [_check(check, quote) for check in checks]
    if preset.left_out:
        parts.append(
            "# Figures this preset does not check, and why:\n" + "".join(f"#   {line}\n" for line in preset.left_out)
        )
    return PresetConfig("\n".join(parts), tuple(r.name for r in rules), tuple(c.name for c in checks), tuple(skipped))


class _Quoter(dict[str, str]):
    """`{name}` in a preset's SQL -> the name quoted for the target database."""

    def __init__(self, preparer: Any) -> None:
        super().__init__()
        self.preparer = preparer

    def __missing__(self, name: str) -> str:
        return quote_name(self.preparer, name)

    def sql(self, text: str) -> str:
        return text.format_map(self)


def _present(entries: tuple[Entry, ...], kind: str, tables: set[str] | None) -> tuple[list[Entry], list[str]]:
    """The entries whose tables all exist (all of them without a database), and why each other one was left out."""
    kept, skipped = [], []
    for entry in entries:
        missing = [t for t in entry.tables if tables is not None and t.casefold() not in tables]
        if missing:
            skipped.append(f"{kind} {entry.name!r}: {_missing(missing)}")
        else:
            kept.append(entry)
    return kept, skipped


def _missing(tables: list[str]) -> str:
    named = [f"`{t}`" for t in tables]
    if len(named) == 1:
        return f"table {named[0]} is not in the database"
    return f"tables {', '.join(named[:-1])} and {named[-1]} are not in the database"


def _family(backend: str) -> str:
    return "mysql" if backend in ("mysql", "mariadb") else backend


def _tables(connection: Connection) -> set[str]:
    inspector = sa.inspect(connection)
    return {t.casefold() for t in [*inspector.get_table_names(), *inspector.get_view_names()]}


def _header(preset: Preset, family: str, url: str | None, skipped: list[str]) -> str:
    lines = [
        f"# trueup.toml for {preset.application}, written by `trueup init --preset {preset.name}`.",
        f"# Each rule below holds in {preset.application}'s own schema and names the file of its source it",
        "# was read from. Identifiers (table, key, quantity) are quoted by trueup; `from`, `where` and",
        f"# check `sql` are SQL, written here for {_DATABASE_NAMES[family]} and run as the configured user.",
    ]
    if skipped:
        lines.append("# Left out, because their tables are not in this database:")
        lines += [f"#   {reason}" for reason in skipped]
    url_line = (
        f"url = {_value(redact(url))}" if url else f"url = {_value(_EXAMPLE_URLS[family])}  # edit: your database"
    )
    return "\n".join([*lines, "", "[database]", url_line, ""])


def _rule(rule: PresetRule, quote: _Quoter) -> str:
    lines = [
        *_about(rule.guards, rule.read_from, rule.notes),
        "[[rules]]",
        f"name = {_value(rule.name)}",
        "[rules.recorded]",
    ]
    lines += _fields(rule.recorded, quote)
    for source in rule.expected:
        lines += ["[[rules.expected]]", *_fields(source, quote)]
    return "\n".join(lines) + "\n"


def _check(check: PresetCheck, quote: _Quoter) -> str:
    fields = {"name": check.name, "severity": check.severity, "sql": check.sql}
    return (
        "\n".join([*_about(check.guards, check.read_from, check.notes), "[[checks]]", *_fields(fields, quote)]) + "\n"
    )


def _about(guards: str, read_from: tuple[str, ...], notes: tuple[str, ...]) -> list[str]:
    lines = [f"# {guards}", f"# Read from: {read_from[0]}"]
    lines += [f"#            {source}" for source in read_from[1:]]
    return lines + [f"# {note}" for note in notes]


_SQL_FIELDS = ("from", "where", "sql")


def _fields(fields: dict[str, Any], quote: _Quoter) -> list[str]:
    return [f"{name} = {_value(quote.sql(v) if name in _SQL_FIELDS else v)}" for name, v in fields.items()]


def _value(value: Any) -> str:
    """A TOML value: JSON's string and array syntax is TOML's too."""
    return json.dumps(value, ensure_ascii=False)

"""`trueup init`: a commented starter config, with rules guessed from a database's schema.

Without a database the starter is a template to fill in. With one, `guess()`
reads the schema and proposes only what it can name for real:

* a *recorded* figure is a numeric column, not a key, whose name looks like a
  cached figure (`quantity`, `qty`, `stock`, `on_hand`, `packs`, `remaining`,
  ... as a whole word of the name), in a table with a primary key;
* its *sources* are the tables holding a foreign key to that primary key:
  their key is the foreign key's columns (in the primary key's order), their
  quantity a figure-like numeric column of their own, else `1` (one per record).

Worked example, a Django shop: `inventory_item(id PK, name, quantity_on_hand)`
and `inventory_stockmove(id PK, item_id -> inventory_item.id, quantity, created_at)`
give the rule `inventory_item_quantity_on_hand`: recorded
`inventory_item.quantity_on_hand` by `id`, source `inventory_stockmove.quantity`
by `item_id`. `auth_group(id, name)` has no figure, so no rule. A guess cannot
know a source's sign or which of its records count (`where`): the file says so
beside every guessed rule, and `trueup init` says so on the terminal.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.config import is_identifier
from trueup.db import redact

HEADER = """\
# trueup.toml: which cached stock figures to reconcile, and against which records.
# Reference: README.md, "Config reference". Identifiers (table, key, quantity, ...)
# are quoted by trueup; `from`, `where` and check `sql` are your own SQL, run as written.

[database]
# A SQLAlchemy URL. ${{VAR}} expands from the environment; $TRUEUP_DATABASE_URL or
# --database override it. Examples: sqlite:///shop.db,
# postgresql://app@db.internal/shop, mysql://app:${{DB_PASSWORD}}@db.internal/shop
url = "{url}"
"""

TEMPLATE = """
# One [[rules]] per cached figure. `expected` sources are summed per key, each with
# its sign (1 adds, -1 takes away), and compared with the recorded quantity.
[[rules]]
name = "stock"
[rules.recorded]                   # the cached figure that may have drifted
table = "stock"
key = ["id"]                       # column(s) identifying one row
quantity = "quantity"
# unit_value = "unit_cost"         # optional: value the drift in money
# group = "location_id"            # optional: break drift down by this column
# where = "deleted_at IS NULL"     # optional: only these recorded rows
# insert_missing = false           # true: keys only the sources know are drift (apply inserts them)

[[rules.expected]]                 # records that add to the figure
table = "stock_movements"
key = ["item_id"]                  # same order as recorded.key
quantity = "quantity"
# sign = 1
# where = "status = 'RECEIVED'"
# time = "created_at"              # optional: flags future-dated records

# [[rules.expected]]               # records that take from it, e.g. with a join:
# from = "sale_lines l JOIN sales s ON s.id = l.sale_id"
# key = ["l.item_id"]
# quantity = "l.quantity"
# sign = -1
# where = "s.status = 'COMPLETED'"
"""

CHECKS = """
# Custom checks: a query returning the rows that break an invariant (no rows = holds).
# [[checks]]
# name = "no negative stock"
# severity = "error"               # error (exit 1 when failing), warning or info
# sql = "SELECT id, quantity FROM stock WHERE quantity < 0"
"""

# Whole words (between `_`) of a column name that mark a cached figure, e.g. quantity_on_hand, stock, qty.
FIGURE_WORDS = (
    "quantity", "qty", "stock", "on_hand", "onhand", "count_on_hand", "packs", "pieces", "remaining", "units",
)  # fmt: skip
PRICE_WORDS = ("price", "cost", "unit_cost", "cost_per_unit", "unit_price")


class SourceGuess(NamedTuple):
    table: str
    key: tuple[str, ...]  # the foreign key's columns, in the recorded key's order
    quantity: str | None  # None: no figure-like column, so each record counts 1
    time: str | None  # a date/time column, offered as a commented suggestion


class RuleGuess(NamedTuple):
    name: str
    table: str
    key: tuple[str, ...]
    quantity: str
    unit_value: str | None  # a price-like column, offered as a commented suggestion
    sources: tuple[SourceGuess, ...]


class Guess(NamedTuple):
    rules: tuple[RuleGuess, ...]
    unreferenced: tuple[str, ...]  # `table.column` figures no table references: no sources to propose
    tables: tuple[tuple[str, tuple[str, ...]], ...]  # every table and its columns, listed in the file


class Starter(NamedTuple):
    text: str
    guess: Guess | None  # None without a database


def starter(url: str | None = None, connection: Connection | None = None) -> Starter:
    """The starter config; with a connection, rules guessed from its schema (see the module docstring)."""
    head = HEADER.format(url=redact(url) if url else "sqlite:///shop.db")
    if connection is None:
        return Starter(head + TEMPLATE + CHECKS, None)
    found = guess(connection)
    return Starter(head + render_guess(found) + CHECKS + _listing(found), found)


def starter_config(url: str | None = None, connection: Connection | None = None) -> str:
    return starter(url, connection).text


def guess(connection: Connection) -> Guess:
    inspector = sa.inspect(connection)
    names = sorted(inspector.get_table_names())
    columns = {name: inspector.get_columns(name) for name in names}
    keys = {name: tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ()) for name in names}
    foreign = {name: inspector.get_foreign_keys(name) for name in names}
    rules, unreferenced = [], []
    for table in names:
        if table.startswith("trueup_") or not keys[table] or not all(map(is_identifier, (table, *keys[table]))):
            continue  # trueup's own tables, and tables a rule could not name
        taken = set(keys[table]) | {c for fk in foreign[table] for c in fk["constrained_columns"]}
        for column in _figures(columns[table], taken):
            sources = tuple(_sources(table, keys[table], names, columns, foreign))
            if not sources:
                unreferenced.append(f"{table}.{column}")
                continue
            price = next(iter(_named(columns[table], PRICE_WORDS, taken)), None)
            rules.append(RuleGuess(_rule_name(table, column), table, keys[table], column, price, sources))
    read = {f"{s.table}.{s.quantity}" for rule in rules for s in rule.sources}  # a source's figure is no rule
    listing = tuple((name, tuple(c["name"] for c in columns[name])) for name in names)
    return Guess(tuple(rules), tuple(u for u in unreferenced if u not in read), listing)


def _sources(
    table: str, key: tuple[str, ...], names: list[str], columns: dict[str, Any], foreign: dict[str, Any]
) -> list[SourceGuess]:
    found = []
    for other in names:
        for fk in foreign[other]:
            if other == table or fk["referred_table"] != table or set(fk["referred_columns"]) != set(key):
                continue
            if not all(map(is_identifier, (other, *fk["constrained_columns"]))):
                continue
            by_referred = dict(zip(fk["referred_columns"], fk["constrained_columns"], strict=True))
            fk_columns = tuple(by_referred[k] for k in key)
            taken = {c for f in foreign[other] for c in f["constrained_columns"]}
            quantity = next(iter(_figures(columns[other], taken)), None)
            time = next((c["name"] for c in columns[other] if isinstance(c["type"], sa.DateTime | sa.Date)), None)
            found.append(SourceGuess(other, fk_columns, quantity, time))
    return found


def _figures(columns: list[dict[str, Any]], taken: set[str]) -> list[str]:
    """Numeric, non-key columns named like a cached figure, the plainest names first."""
    named = _named(columns, FIGURE_WORDS, taken)
    return sorted(named, key=lambda name: (name not in FIGURE_WORDS, len(name)))


def _named(columns: list[dict[str, Any]], words: tuple[str, ...], taken: set[str]) -> list[str]:
    return [
        c["name"]
        for c in columns
        if c["name"] not in taken
        and is_identifier(c["name"])
        and _is_number(c["type"])
        and any(f"_{word}_" in f"_{c['name'].lower()}_" for word in words)
        and not c["name"].lower().endswith("_id")
    ]


def _is_number(type_: Any) -> bool:
    return isinstance(type_, sa.Integer | sa.Numeric) and not isinstance(type_, sa.Boolean)


def _rule_name(table: str, column: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{table}_{column}")


def render_guess(found: Guess) -> str:
    unreferenced = ""
    if found.unreferenced:
        unreferenced = (
            "\n# Named like cached figures, but no table references them by foreign key, so no sources\n"
            "# were guessed (write their sources yourself, with `from` and joins if need be):\n"
            + "".join(f"#   {name}\n" for name in found.unreferenced)
        )
    if not found.rules:
        example = "\n".join(f"# {line}" if line else "#" for line in TEMPLATE.splitlines()[1:])
        return (
            "\n# trueup guessed no rule: no numeric column named like a cached figure (quantity, qty, stock,\n"
            "# on_hand, packs, remaining, ...) has a table referencing it by foreign key.\n"
            f"{unreferenced}\n# A rule looks like this:\n{example}\n"
        )
    parts = [
        "\n# GUESSED from the schema: these rules name real tables and columns that look like cached\n"
        "# figures and the tables that reference them, but a guess cannot know which records add and\n"
        "# which take away (`sign`), nor which count (`where`). Check each source before trusting the\n"
        "# drift it reports, and delete the rules that are not cached figures.\n"
    ]
    parts += [_rule_text(rule) for rule in found.rules]
    return "".join([*parts, unreferenced])


def _rule_text(rule: RuleGuess) -> str:
    lines = [
        "",
        "[[rules]]",
        f"name = {json.dumps(rule.name)}",
        "[rules.recorded]",
        f"table = {json.dumps(rule.table)}",
        f"key = {_list(rule.key)}",
        f"quantity = {json.dumps(rule.quantity)}",
    ]
    if rule.unit_value:
        lines.append(f'# unit_value = "{rule.unit_value}"       # optional: value the drift in money')
    for source in rule.sources:
        lines += ["[[rules.expected]]", f"table = {json.dumps(source.table)}", f"key = {_list(source.key)}"]
        if source.quantity:
            lines.append(f"quantity = {json.dumps(source.quantity)}")
        else:
            lines.append("quantity = 1                      # no figure column: each record counts one")
        lines.append("sign = 1                          # GUESSED: -1 if these records take stock away")
        lines.append('# where = "..."                   # only the records that count (e.g. a status)')
        if source.time:
            lines.append(f'# time = "{source.time}"')
    return "\n".join(lines) + "\n"


def _list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(name) for name in names) + "]"


def _listing(found: Guess) -> str:
    if not found.tables:
        return ""
    listing = "\n".join(f"#   {name}: {', '.join(columns)}" for name, columns in found.tables)
    return f"\n# Tables in this database, with their columns:\n{listing}\n"


def summary(found: Guess) -> str:
    """What `trueup init` guessed, for the terminal."""
    figures = f" ({', '.join(found.unreferenced)} look like cached figures: see the file)" if found.unreferenced else ""
    if not found.rules:
        return f"Guessed no rule: no table references a column named like a cached figure{figures}."
    names = "; ".join(f"{r.table}.{r.quantity} from {', '.join(s.table for s in r.sources)}" for r in found.rules)
    return (
        f"Guessed {len(found.rules)} rule(s) from the schema ({names}). "
        "Check each source's sign and where before trusting the drift."
    )

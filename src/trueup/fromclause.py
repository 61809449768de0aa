"""The tables a source's `from` clause joins, and the changed-row placeholder of guard lookups.

A guard trigger stands on a table, so guarding a `from` source needs its
tables. `tables()` reads them from a plain join chain, the shape almost every
such source has:

    inventory_transferrequestlineitem li JOIN inventory_transferrequest r ON r.id = li.request_id
    -> [("inventory_transferrequestlineitem", "li"), ("inventory_transferrequest", "r")]

A table starts the clause or follows `JOIN` (any kind, parenthesised joins
too); an alias follows it, with or without `AS`. What a reader of the text
cannot name for sure is refused with the reason (a `ValueError`): a subquery
(`(SELECT …)`), `LATERAL`, a table function (`generate_series(…) g`) or a
comma join, whose tables a trigger could miss. String literals are masked
before reading, so `ON r.status = 'JOIN x'` names no table.

A guard lookup (`[rules.expected.guard]`) is SQL run by the trigger for each
image of a changed row; it names that row `row` (`row.request_id`), and
`image()` writes it as the trigger's `OLD` or `NEW`.
"""

from __future__ import annotations

import re

from trueup.names import join_name, split_name

_PART = r'(?:"(?:[^"]|"")+"|`[^`]+`|[A-Za-z_][\w$]*)'
_NAME = re.compile(rf"{_PART}(?:\s*\.\s*{_PART})?")
_START = re.compile(r"^|\b(?:STRAIGHT_)?JOIN\b", re.IGNORECASE)
_SUBQUERY = re.compile(r"\(\s*(?:SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)
_NOT_ALIAS = frozenset(
    {"on", "using", "join", "inner", "left", "right", "full", "outer", "cross", "natural", "straight_join"}
    | {"where", "group", "order", "limit", "having", "window", "union", "lateral"}
)
_ROW = re.compile(r"(?<![\w.\"`$])row\s*\.", re.IGNORECASE)


def tables(clause: str) -> list[tuple[str, str]]:
    """(table, alias) for each table of the join chain `clause`, in order; the alias is the table's
    last name part when none is given. ValueError says why the tables cannot be read for sure."""
    text = _masked(clause)
    if _SUBQUERY.search(text):
        raise ValueError("holds a subquery, whose tables a trigger could miss")
    if _depth_zero_comma(text):
        raise ValueError("joins with a comma; write it as `a JOIN b ON ...`")
    found = []
    for start in _START.finditer(text):
        stripped = text[start.end() :].lstrip(" \t\r\n(")
        found.append(_reference(clause, text, len(text) - len(stripped)))
    return found


def mentions_row(text: str) -> bool:
    return _ROW.search(_masked(text)) is not None


def image(text: str, row: str) -> str:
    """The lookup `text` with its changed row `row.` written as `row` ("OLD" or "NEW") for a trigger."""
    masked = _masked(text)
    pieces, last = [], 0
    for match in _ROW.finditer(masked):
        pieces += [text[last : match.start()], f"{row}."]
        last = match.end()
    return "".join([*pieces, text[last:]])


def same_table(a: str, b: str) -> bool:
    """Two spellings of a table name (config or SQL text) name the same table, ignoring case."""
    return _canonical(a).casefold() == _canonical(b).casefold()


def _reference(clause: str, text: str, offset: int) -> tuple[str, str]:
    name = _NAME.match(text, offset)
    if name is None:
        raise ValueError(f"has no table name at {clause[offset : offset + 20]!r}")
    if name.group().lower() == "lateral":
        raise ValueError("joins LATERAL, whose tables a trigger could miss")
    after = text[name.end() :].lstrip()
    if after.startswith("("):
        raise ValueError(f"calls a table function {clause[name.start() : name.end()]!r}, whose rows no trigger sees")
    table = _canonical(clause[name.start() : name.end()])
    alias = re.match(rf"(?:AS\s+)?({_PART})", after, re.IGNORECASE)
    if alias is None or alias.group(1).lower() in _NOT_ALIAS:
        return table, split_name(table)[-1]
    return table, _unquoted(alias.group(1))


def _canonical(name: str) -> str:
    """A SQL-text name (`"my.schema".stock`, `` `stock` ``, `inventory . stock`) in config spelling."""
    parts = re.findall(_PART, name)
    return join_name([_unquoted(p) for p in parts])


def _unquoted(part: str) -> str:
    if part[:1] == '"':
        return part[1:-1].replace('""', '"')
    return part[1:-1] if part[:1] == "`" else part


def _masked(text: str) -> str:
    """`text` with every string literal's content blanked, offsets kept."""
    return re.sub(r"'(?:[^']|'')*'", lambda m: "'" + " " * (len(m.group()) - 2) + "'", text)


def _depth_zero_comma(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            return True
    return False

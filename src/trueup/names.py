"""Names in the config, split into parts and joined back; standard library only, so trueup.config needs no SQLAlchemy.

A name in the config is its parts joined by dots: `stock`, `inventory.stock`,
`tabStock Ledger Entry`, `l.Bestand_ä`. A part that itself holds a dot (or a double quote)
is written in double quotes, with `""` for a quote inside: `"my.schema".stock`. Parts are
otherwise taken exactly as written (spaces, case, hyphens, reserved words, any letters) and
quoted by the database's own rules when SQL is built (`trueup.db.quote_name`).
"""

from __future__ import annotations

from collections.abc import Sequence


def split_name(text: str) -> tuple[str, ...]:
    """`inventory.stock` -> ("inventory", "stock"); `"my.schema".stock` -> ("my.schema", "stock")."""
    parts: list[str] = []
    rest = text
    while True:
        if rest.startswith('"'):
            part, rest = _quoted_part(rest, text)
        else:
            part, dot, after = rest.partition(".")
            if '"' in part:
                raise ValueError(f'{text!r}: a double quote may only enclose a whole part, as in "my.schema".stock')
            if part != part.strip():
                raise ValueError(f"{text!r}: the part {part!r} starts or ends with a space; quote it if it is meant")
            rest = dot + after
        if not part:
            raise ValueError(f"{text!r}: an empty name (two dots, or a dot at either end)")
        parts.append(part)
        if not rest:
            return tuple(parts)
        if not rest.startswith("."):
            raise ValueError(f"{text!r}: expected a '.' after the quoted part, found {rest!r}")
        rest = rest[1:]
        if not rest:
            raise ValueError(f"{text!r}: an empty name (two dots, or a dot at either end)")


def _quoted_part(rest: str, text: str) -> tuple[str, str]:
    """The part in the double quotes `rest` starts with, and what follows its closing quote."""
    part, index = "", 1
    while True:
        end = rest.find('"', index)
        if end < 0:
            raise ValueError(f"{text!r}: a double quote is never closed")
        part += rest[index:end]
        if rest.startswith('""', end):
            part, index = part + '"', end + 2
            continue
        return part, rest[end + 1 :]


def join_name(parts: Sequence[str]) -> str:
    """The config spelling of a name's parts: the inverse of `split_name`."""
    return ".".join(_config_part(part) for part in parts)


def _config_part(part: str) -> str:
    if "." in part or '"' in part or part != part.strip() or not part:
        return '"' + part.replace('"', '""') + '"'
    return part

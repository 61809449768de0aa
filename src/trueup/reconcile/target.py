"""The target of a repair: a table whose quantity column is written, identified by its key columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.config import Rule
from trueup.db import coerce, table_ref
from trueup.expiring import PerEngine
from trueup.names import split_name

SCHEMA_SECONDS = 60.0  # how long a process reuses what it read of the schema (key types, a resolved rule)


class Target(NamedTuple):
    """A table whose quantity column a repair writes, identified by its key columns."""

    table: str
    key: tuple[str, ...]
    quantity: str

    @classmethod
    def of(cls, rule: Rule) -> Target:
        recorded = rule.recorded
        return cls(recorded.table, tuple(_bare(k) for k in recorded.key), _bare(recorded.quantity))

    def clause(self, *extra: str) -> sa.TableClause:
        """The table with its key, quantity and `extra` columns, for UPDATE, INSERT and DELETE."""
        return table_ref(self.table, *self.key, self.quantity, *extra)

    def raw_rows(self, connection: Connection) -> sa.TableClause:
        """Every column of the table, untyped: row images read and written through it keep each
        value exactly as the database stores it (SQLite's text dates stay byte for byte)."""
        return table_ref(self.table, *[c["name"] for c in self._columns(connection)])

    def key_types(self, connection: Connection) -> list[type | None]:
        """The Python type of each key column, to turn text keys (CLI, JSON) back into values; read from
        the schema once per `SCHEMA_SECONDS` and engine."""
        return list(_KEY_TYPES.fetch(connection.engine, self, lambda: self._key_types(connection)))

    def _key_types(self, connection: Connection) -> tuple[type | None, ...]:
        columns = {c["name"]: c["type"] for c in self._columns(connection)}
        types: list[type | None] = []
        for column in self.key:
            try:
                types.append(columns[column].python_type)
            except (KeyError, NotImplementedError):
                types.append(None)
        return tuple(types)

    def _columns(self, connection: Connection) -> list[dict[str, Any]]:
        *schema, name = split_name(self.table)
        return sa.inspect(connection).get_columns(name, schema=schema[0] if schema else None)

    def coerce_keys(self, connection: Connection, keys: Iterable[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
        typed = self.key_coercer(connection)
        return (typed(key) for key in keys)

    def key_coercer(self, connection: Connection) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """A function typing one key (text from the CLI, JSON) like the key columns; ValueError if it does not fit.

        The column types are read from the schema on the first call.
        """
        types: list[type | None] = []

        def typed(key: Sequence[Any]) -> tuple[Any, ...]:
            types[:] = types or self.key_types(connection)
            if len(key) != len(types):
                raise ValueError(f"{list(key)!r} has {len(key)} value(s) for a {len(types)}-column key")
            return tuple(coerce(value, kind) for value, kind in zip(key, types, strict=True))

        return typed


_KEY_TYPES: PerEngine[Target, tuple[type | None, ...]] = PerEngine(SCHEMA_SECONDS)


def _bare(column: str) -> str:
    return split_name(column)[-1]

"""A rule as one set-based SQL query: the comparison of recorded and expected per key.

The query is built in three layers, all inside the database:

1. one branch per side, each already aggregated where it can be:

       recorded:  SELECT key AS k0, quantity AS recorded, 1 AS rec_rows, ...   FROM recorded
       source i:  SELECT key AS k0, ±SUM(quantity) AS expected, COUNT(*) AS records, ...
                  FROM source WHERE ... GROUP BY key

   A source on the recorded rows themselves (same table, key and filter: an
   opening figure such as `quantity_total` beside `quantity_remaining`) is
   read in the recorded branch instead, `±quantity AS expected` row by row,
   which saves a scan of the table, a sum per key and a union row per key;

2. `UNION ALL` of the branches, then `GROUP BY k0..kn` to fold each key's
   recorded row and source aggregates into one row (portable: MySQL has no
   FULL JOIN, and it folds any number of rows a key). Where the database has
   FULL JOIN and each key is at most one recorded row (a primary key, or a
   unique key on NOT NULL columns), the recorded rows are instead `FULL JOIN`ed
   to the sources' sums (several sources summed per key first): a hash join
   instead of a second aggregation over every key, measured faster on
   PostgreSQL (BENCHMARKS.md, Check). Both give the same rows;

3. `HAVING` (`WHERE` after the join) keeps only the keys worth reporting: drift, and the integrity
   findings (a key no recorded row has, duplicated or NULL keys, NULL or
   negative figures, future-dated or NULL-quantity records), ordered worst
   first (`ABS(expected - recorded) DESC`). A rule's `tolerance` is applied
   here too: `within` flags a key whose figures differ by no more than it
   (`ABS(expected - recorded) <= :tolerance`, an exact bound decimal), which
   is then counted, not reported as drift, and never written by a repair.

Worked example: recorded `inventory_items(id=1, quantity_remaining=524)`,
source A (sign 1) `inventory_items.quantity_total` = 600 for id 1, source B
(sign -1) usage logs summing 120 for id 1 and 5 for id 9 (an orphan). The
union holds (1, rec 524), (1, exp 600), (1, exp -120), (9, exp -5); grouping
gives id 1: recorded 524, expected 480 -> delta -44, and id 9: no recorded
row, expected -5 -> a missing row (and a negative expected figure).

Every interesting key costs one output row; everything else stays in the
database. `Scope` narrows a run to some keys or a `where` on the recorded
table, pushed into every branch so indexes are used.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa

from trueup.config import Rule, Source
from trueup.db import Dialect, column_ref, is_in, table_ref, user_condition, user_sql

# Output columns besides the keys k0..kn, in order.
FIGURES = (
    "recorded",  # SUM of the recorded quantity (NULL counts as 0)
    "rec_rows",  # how many recorded rows carry this key: 1 is healthy
    "rec_nulls",  # recorded rows whose quantity is NULL
    "unit_value",
    "grp",
    "expected",  # signed sum over all sources
    "records",  # source records behind the expected figure
    "future",  # source records dated after now
    "null_qty",  # source records with a NULL quantity
    "within",  # 1: expected and recorded differ, by no more than the rule's tolerance
)


@dataclass(frozen=True)
class Scope:
    """Which part of a rule to look at: some keys, a table of keys, and/or a filter on the recorded table.

    `key_table` is a (temporary) table whose columns k0..kn hold the keys: how a
    repair narrows a rule to the 100,000 keys of a plan without binding 100,000
    parameters.
    """

    keys: Sequence[tuple[Any, ...]] = field(default_factory=tuple)
    where: str | None = None
    key_table: sa.TableClause | None = None

    @property
    def is_everything(self) -> bool:
        return not self.keys and self.where is None and self.key_table is None


EVERYTHING = Scope()


def key_names(rule: Rule) -> list[str]:
    return [f"k{i}" for i in range(len(rule.recorded.key))]


class _Folded(NamedTuple):
    """Each key's figures in one row, before the filter: the FROM (and GROUP BY) and the expressions."""

    query: sa.Select
    keys: list[sa.ColumnElement[Any]]
    figures: dict[str, sa.ColumnElement[Any]]  # FIGURES but `within`, by name
    grouped: bool  # the figures are aggregates: filter with HAVING, not WHERE


def comparison(
    rule: Rule, sa_dialect: sa.Dialect, dialect: Dialect, scope: Scope = EVERYTHING, *, joined: bool = False
) -> sa.Select:
    """The per-key comparison for `rule`, only interesting keys, worst first.

    `joined` folds by a FULL JOIN of the recorded rows with the sources instead of UNION ALL and
    GROUP BY: only for a recorded key that is unique and never NULL (see `resolve.recorded_key_is_unique`)
    and a database with FULL JOIN; the rows are the same.
    """
    prep = sa_dialect.identifier_preparer
    opening = [s for s in rule.expected if reads_recorded_rows(rule, s, scope)]
    recorded = recorded_branch(rule, prep, dialect, scope, opening)
    sources = [source_branch(rule, s, prep, dialect, scope) for s in rule.expected if s not in opening]
    folded = _joined(rule, recorded, sources) if joined else _grouped(rule, [recorded, *sources])
    figures, keys = folded.figures, folded.keys
    expected, recorded_figure = figures["expected"], figures["recorded"]
    delta = expected - recorded_figure
    within = (
        _flag(sa.and_(delta != 0, dialect.within(expected, recorded_figure, rule.tolerance)))
        if rule.tolerance
        else _ZERO
    )
    interesting = sa.or_(
        delta != 0,
        figures["rec_rows"] != 1,
        figures["rec_nulls"] > 0,
        figures["future"] > 0,
        figures["null_qty"] > 0,
        expected < 0,
        recorded_figure < 0,
        *[k.is_(None) for k in keys],
    )
    columns = [k.label(name) for k, name in zip(keys, key_names(rule), strict=True)]
    columns += [figures[name].label(name) for name in FIGURES if name != "within"]
    columns.append(within.label("within"))
    query = folded.query.add_columns(*columns)
    query = query.having(interesting) if folded.grouped else query.where(interesting)
    return query.order_by(sa.func.abs(delta).desc(), *keys)


def _grouped(rule: Rule, branches: list[sa.Select]) -> _Folded:
    """UNION ALL of the branches, GROUP BY the key: portable (MySQL has no FULL JOIN), any number of rows a key."""
    union = sa.union_all(*branches).subquery("u")
    keys = [union.c[name] for name in key_names(rule)]
    figures = {name: sa.func.sum(union.c[name]) for name in FIGURES if name != "within"}
    figures |= {
        "recorded": sa.func.coalesce(sa.func.sum(union.c.recorded), 0),
        "unit_value": sa.func.max(union.c.unit_value),
        "grp": sa.func.max(union.c.grp),
    }
    return _Folded(sa.select().select_from(union).group_by(*keys), keys, figures, grouped=True)


def _joined(rule: Rule, recorded: sa.Select, sources: list[sa.Select]) -> _Folded:
    """The recorded rows FULL JOIN the sources' sums (folded first when there are several): a hash join,
    not a second aggregation over every key. Exact only when each key is at most one recorded row."""
    names = key_names(rule)
    r = recorded.subquery("r")
    if not sources:  # every source is an opening figure on the recorded rows
        figures = {name: r.c[name] for name in FIGURES if name != "within"}
        figures["recorded"] = sa.func.coalesce(r.c.recorded, 0)
        return _Folded(sa.select().select_from(r), [r.c[n] for n in names], figures, grouped=False)
    s = (sources[0] if len(sources) == 1 else _summed(rule, sources)).subquery("s")
    on = sa.and_(*[r.c[n] == s.c[n] for n in names])
    keys = [sa.func.coalesce(r.c[n], s.c[n]) for n in names]
    figures = {name: sa.func.coalesce(r.c[name], 0) for name in ("recorded", "rec_rows", "rec_nulls")}
    figures |= {"unit_value": r.c.unit_value, "grp": r.c.grp}
    figures |= {
        name: sa.func.coalesce(r.c[name], 0) + sa.func.coalesce(s.c[name], 0)
        for name in ("expected", "records", "future", "null_qty")
    }
    return _Folded(sa.select().select_from(r.outerjoin(s, on, full=True)), keys, figures, grouped=False)


def _summed(rule: Rule, sources: list[sa.Select]) -> sa.Select:
    """Several sources' branches folded into one row a key: their expected figure and counts summed."""
    union = sa.union_all(*sources).subquery("su")
    keys = [union.c[name] for name in key_names(rule)]
    sums = [sa.func.sum(union.c[name]).label(name) for name in ("expected", "records", "future", "null_qty")]
    return sa.select(*keys, *sums).group_by(*keys)


def known_keys(rule: Rule, sa_dialect: sa.Dialect, dialect: Dialect, scope: Scope) -> sa.Select:
    """The keys of `scope` that the recorded table or any source of the rule holds."""
    prep = sa_dialect.identifier_preparer
    branches = [recorded_branch(rule, prep, dialect, scope)]
    branches += [source_branch(rule, s, prep, dialect, scope) for s in rule.expected]
    union = sa.union_all(*branches).subquery("u")
    return sa.select(*[union.c[name] for name in key_names(rule)]).distinct()


def recorded_count(rule: Rule, sa_dialect: sa.Dialect, scope: Scope = EVERYTHING) -> sa.Select:
    """How many recorded rows the rule covers (items checked, before missing rows)."""
    prep = sa_dialect.identifier_preparer
    table = table_ref(rule.recorded.table)
    query = sa.select(sa.func.count()).select_from(table)
    return query.where(*_recorded_filters(rule, prep, scope))


def recorded_branch(rule: Rule, prep: Any, dialect: Dialect, scope: Scope, opening: Sequence[Source] = ()) -> sa.Select:
    """The recorded rows, carrying the figures of the `opening` sources read from those same rows."""
    rec = rule.recorded
    quantity = column_ref(prep, rec.quantity)
    figures = [_row_figures(source, prep, dialect) for source in opening]
    columns = [column_ref(prep, k).label(n) for k, n in zip(rec.key, key_names(rule), strict=True)]
    columns += [
        quantity.label("recorded"),
        _ONE.label("rec_rows"),
        _flag(quantity.is_(None)).label("rec_nulls"),
        (column_ref(prep, rec.unit_value) if rec.unit_value else sa.null()).label("unit_value"),
        (column_ref(prep, rec.group) if rec.group else sa.null()).label("grp"),
        _added(expected for expected, _, _ in figures).label("expected"),
        sa.literal_column(str(len(figures))).label("records"),  # each opening source is one record per row
        _added(future for _, future, _ in figures).label("future"),
        _added(null_qty for _, _, null_qty in figures).label("null_qty"),
    ]
    query = sa.select(*columns).select_from(table_ref(rec.table))
    return query.where(*_recorded_filters(rule, prep, scope))


def source_branch(rule: Rule, source: Source, prep: Any, dialect: Dialect, scope: Scope) -> sa.Select:
    """A source's records summed per key, with their counts (records, future-dated, NULL quantity)."""
    keys = [column_ref(prep, k) for k in source.key]
    quantity, nullable = _quantity(source, prep)
    total = sa.func.coalesce(sa.func.sum(quantity), _ZERO)
    future = _count(sa.func.count(sa.case((_is_future(source, prep, dialect), _ONE)))) if source.time else _ZERO
    columns = [k.label(n) for k, n in zip(keys, key_names(rule), strict=True)]
    columns += [
        sa.null().label("recorded"),
        _ZERO.label("rec_rows"),
        _ZERO.label("rec_nulls"),
        sa.null().label("unit_value"),
        sa.null().label("grp"),
        (total if source.sign == 1 else -total).label("expected"),
        _count(sa.func.count()).label("records"),
        future.label("future"),
        (_count(sa.func.count() - sa.func.count(quantity)) if nullable else _ZERO).label("null_qty"),
    ]
    origin = table_ref(source.table) if source.table else user_sql(source.from_ or "")
    query = sa.select(*columns).select_from(origin)
    if source.where:
        query = query.where(user_condition(source.where))
    query = query.where(*_source_scope(rule, keys, prep, scope))
    return query.group_by(*keys)


def reads_recorded_rows(rule: Rule, source: Source, scope: Scope = EVERYTHING) -> bool:
    """True for a source on the very rows of the recorded table (an opening figure beside the cached one).

    Same table, same key, same filter: its figures are read in the recorded branch, row by row,
    instead of in a branch of their own that would scan the table again, sum it per key and add a
    row per key to the union. A `Scope.where` selects source rows by their key (see
    `_source_scope`), which differs when keys repeat, so it keeps the source apart.
    """
    return (
        source.table == rule.recorded.table
        and list(source.key) == list(rule.recorded.key)
        and source.where == rule.recorded.where
        and scope.where is None
    )


def _row_figures(source: Source, prep: Any, dialect: Dialect) -> tuple[sa.ColumnElement[Any], ...]:
    """(expected, future, null_qty) of one source row, as its summed branch would count it."""
    quantity, nullable = _quantity(source, prep)
    expected = sa.func.coalesce(quantity, _ZERO)
    return (
        expected if source.sign == 1 else -expected,
        _flag(_is_future(source, prep, dialect)) if source.time else _ZERO,
        _flag(quantity.is_(None)) if nullable else _ZERO,
    )


def _quantity(source: Source, prep: Any) -> tuple[sa.ColumnElement[Any], bool]:
    """The source's quantity expression, and whether it can be NULL (a column) or not (a constant)."""
    if isinstance(source.quantity, str):
        return column_ref(prep, source.quantity), True
    return sa.literal_column(str(source.quantity)), False


def _is_future(source: Source, prep: Any, dialect: Dialect) -> sa.ColumnElement[bool]:
    return dialect.is_future(column_ref(prep, source.time or ""))


def _count(counted: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    # COUNT is a BIGINT, which PostgreSQL sums through NUMERIC, one allocation per key in the outer
    # GROUP BY; as INTEGER it sums in a machine word (no key has 2**31 records).
    return sa.cast(counted, sa.Integer)


def _added(terms: Any) -> sa.ColumnElement[Any]:
    terms = list(terms)
    return functools.reduce(operator.add, terms) if terms else _ZERO


def _recorded_filters(rule: Rule, prep: Any, scope: Scope) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if rule.recorded.where:
        filters.append(user_condition(rule.recorded.where))
    if scope.where:
        filters.append(user_condition(scope.where))
    if scope.keys:
        filters.append(key_in([column_ref(prep, k) for k in rule.recorded.key], scope.keys, prep.dialect))
    if scope.key_table is not None:
        filters.append(in_key_table([column_ref(prep, k) for k in rule.recorded.key], scope.key_table))
    return filters


def _source_scope(
    rule: Rule, keys: list[sa.ColumnElement[Any]], prep: Any, scope: Scope
) -> list[sa.ColumnElement[bool]]:
    filters: list[sa.ColumnElement[bool]] = []
    if scope.keys:
        filters.append(key_in(keys, scope.keys, prep.dialect))
    if scope.key_table is not None:
        filters.append(in_key_table(keys, scope.key_table))
    if scope.where:
        # Only keys whose recorded row matches: a semi-join on the recorded table.
        recorded_keys = (
            sa.select(*[column_ref(prep, k) for k in rule.recorded.key])
            .select_from(table_ref(rule.recorded.table))
            .where(user_condition(scope.where))
        )
        filters.append(_key_tuple(keys).in_(recorded_keys))
    return filters


def key_in(
    columns: list[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]], sa_dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    """`columns` (one key) equals one of `keys`: `col IN (…)` (several keys: `db.is_in`, one array on
    PostgreSQL), a row-value IN for composite keys, or for a single composite key `a = … AND b = …`
    (a single key's values may be expressions: the guard's PL/pgSQL variables, which neither an array
    nor a row-value IN list can hold)."""
    if len(keys) == 1 and len(columns) > 1:
        return sa.and_(*(c == v for c, v in zip(columns, keys[0], strict=True)))
    if len(keys) == 1:
        return columns[0].in_([keys[0][0]])
    if len(columns) == 1:
        return is_in(sa_dialect, columns[0], [k[0] for k in keys])
    return sa.tuple_(*columns).in_([tuple(k) for k in keys])


def in_key_table(
    columns: list[sa.ColumnElement[Any]], table: sa.TableClause, *where: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool]:
    """`columns` (one key) is among the keys k0..kn of a work `table` (of its rows matching `where`)."""
    listed = sa.select(*[table.c[f"k{i}"] for i in range(len(columns))]).where(*where)
    return _key_tuple(columns).in_(listed)


def _key_tuple(columns: list[sa.ColumnElement[Any]]) -> sa.ColumnElement[Any]:
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


_ZERO = sa.literal_column("0")
_ONE = sa.literal_column("1")


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.case((condition, _ONE), else_=_ZERO)

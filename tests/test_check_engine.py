"""The check engine's comparison on every database: figures and findings against hand-computed truths.

The rule is the usage-logs shape: an item's expected figure is its opening `total` (read from the
recorded table itself, row by row) minus its logged usage (summed per item), with integrity problems
planted so every counter of the comparison query is exercised.
"""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.databases import Database
from trueup.config import parse_config
from trueup.db import CHUNK, connect, dialect_for, in_chunks
from trueup.errors import ConfigError
from trueup.examples import usage_logs
from trueup.reconcile import query, resolve
from trueup.reconcile.check import CheckRun, RuleScan
from trueup.reconcile.resolve import resolve_rule

metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, nullable=True),  # no key constraint: duplicates and NULLs are findings
    sa.Column("total", sa.Integer, nullable=True),
    sa.Column("remaining", sa.Integer, nullable=True),
    sa.Column("label", sa.String(20), nullable=False, server_default="a"),
)
logs = sa.Table(
    "logs",
    metadata,
    sa.Column("item_id", sa.Integer, nullable=True),
    sa.Column("used", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
)

RULE = {
    "name": "stock",
    "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
    "expected": [
        {"table": "items", "key": ["id"], "quantity": "total"},
        {
            "table": "logs",
            "key": ["item_id"],
            "quantity": "used",
            "sign": -1,
            "time": "at",
            "where": "kind LIKE 'use%' AND kind <> 'use:void'",  # a literal % and a colon pass through
        },
    ],
}


def config(url: str, *rules: dict):
    return parse_config({"database": {"url": url}, "rules": list(rules or [RULE])})


def fill(db: Database) -> None:
    db.create(metadata)
    past, future = datetime.now() - timedelta(days=1), datetime.now() + timedelta(days=30)
    db.insert(
        items,
        [
            {"id": 1, "total": 100, "remaining": 90},  # 100 - 4 - 6 = 90: fine
            {"id": 2, "total": 50, "remaining": 50},  # 50 - 5 - 5 = 40: drift -10, one NULL log
            {"id": 3, "total": None, "remaining": 0},  # NULL opening figure counts as 0: fine, a NULL quantity
            {"id": 4, "total": 10, "remaining": 10},  # twice: a duplicate key, never drift
            {"id": 4, "total": 10, "remaining": 10},
            {"id": 5, "total": 20, "remaining": 30},  # 20 - 5 = 15: drift -15, a future-dated log
            {"id": 6, "total": 7, "remaining": None},  # NULL recorded counts as 0: drift +7
            {"id": None, "total": 1, "remaining": 1},  # a NULL key
        ],
    )
    db.insert(
        logs,
        [
            {"item_id": 1, "used": 4, "kind": "use", "at": past},
            {"item_id": 1, "used": 6, "kind": "use", "at": past},
            {"item_id": 1, "used": 50, "kind": "use:void", "at": past},  # filtered out by `where`
            {"item_id": 2, "used": 5, "kind": "use", "at": past},
            {"item_id": 2, "used": 5, "kind": "use", "at": past},
            {"item_id": 2, "used": None, "kind": "use", "at": past},
            {"item_id": 5, "used": 5, "kind": "use", "at": future},
            {"item_id": 9, "used": 3, "kind": "use", "at": past},  # an orphan: no item 9
            {"item_id": None, "used": 2, "kind": "use", "at": past},
        ],
    )


def test_comparison_figures_and_findings(db: Database) -> None:
    fill(db)
    with connect(db.engine) as connection:
        report = CheckRun(connection, config(db.url), keep=None).report()
    (result,) = report.rules
    assert [(d.key, d.recorded, d.expected, d.delta) for d in result.worst] == [
        ((5,), 30, 15, -15),
        ((2,), 50, 40, -10),
        ((6,), 0, 7, 7),
    ]
    assert (result.items, result.drifted, result.abs_drift) == (8 + 1, 3, 25 + 7)  # 8 rows, and item 9
    assert {f.kind: f.count for f in result.findings} == {
        "missing_row": 1,  # item 9
        "duplicate_key": 1,  # item 4
        "null_key": 3,  # the NULL item row, read as recorded and as opening figure, and one log
        "null_recorded": 1,  # item 6
        "null_quantity": 2,  # item 3's total and one of item 2's logs
        "future_dated": 1,  # item 5's log
        "negative_expected": 1,  # item 9: -3
    }
    assert report.exit_code == 1


def test_opening_figure_is_read_from_the_recorded_rows(db: Database) -> None:
    """A source on the recorded table, keyed and filtered like it, adds no scan and no branch of its own."""
    fill(db)
    with connect(db.engine) as connection:
        rule = resolve_rule(connection, config(db.url).rules[0])
        sql = str(query.comparison(rule, connection.dialect, dialect_for(connection)).compile(connection))
    assert query.reads_recorded_rows(rule, rule.expected[0])
    assert not query.reads_recorded_rows(rule, rule.expected[1])
    assert not query.reads_recorded_rows(rule, rule.expected[0], query.Scope(where="id > 0"))
    filtered = rule.model_copy(update={"recorded": rule.recorded.model_copy(update={"where": "id > 0"})})
    assert not query.reads_recorded_rows(filtered, rule.expected[0])  # other rows than the recorded ones
    same_rows = rule.expected[0].model_copy(update={"where": "id > 0"})
    assert query.reads_recorded_rows(filtered, same_rows)
    assert sql.count("FROM items") == 1
    assert sql.count("FROM logs") == 1


def test_scope_where_keeps_the_opening_figure_apart(db: Database) -> None:
    fill(db)
    with connect(db.engine) as connection:
        rule = resolve_rule(connection, config(db.url).rules[0])
        scan = RuleScan(connection, rule, scope=query.Scope(where="id <> 5"), keep=None)
        assert [(d.key, d.delta) for d in scan] == [((2,), -10), ((6,), 7)]
        result = scan.result()
    assert (result.items, result.drifted) == (6, 2)  # items 1, 2, 3, 4 (twice), 6: NULL keys match no filter
    assert {f.kind: f.count for f in result.findings} == {
        "duplicate_key": 1,
        "null_recorded": 1,
        "null_quantity": 2,
    }


def test_scope_keys_are_bound_on_every_database(db: Database) -> None:
    fill(db)
    rule = config(db.url).rules[0]
    with connect(db.engine) as connection:
        resolved = resolve_rule(connection, rule)
        scan = RuleScan(connection, resolved, scope=query.Scope(keys=[(2,), (6,), (1,)]))
        assert [(d.key, d.delta) for d in scan] == [((2,), -10), ((6,), 7)]
        assert scan.result().items == 3


@pytest.mark.parametrize(
    ("url", "keys", "shape"),
    [
        ("postgresql+psycopg://h/d", [(1,), (2,), (3,)], "= ANY (%(param_1)s)"),  # one array, any count
        ("postgresql+psycopg://h/d", [(1,), ("2",)], "IN (__[POSTCOMPILE_"),  # mixed types: no array holds them
        ("postgresql+psycopg2://h/d", [(1,), (2,)], "IN (__[POSTCOMPILE_"),  # psycopg2 binds a list as ARRAY[...]
        ("mysql+pymysql://h/d", [(1,), (2,)], "IN (__[POSTCOMPILE_"),
        ("sqlite://", [(1,), (2,)], "IN (__[POSTCOMPILE_"),
    ],
)
def test_scope_keys_reach_postgresql_as_one_array(url: str, keys: list, shape: str) -> None:
    sa_dialect = sa.engine.make_url(url).get_dialect()()  # compiled only: no driver, no server
    resolved = config(url).rules[0]
    count = str(query.recorded_count(resolved, sa_dialect, query.Scope(keys=keys)).compile(dialect=sa_dialect))
    assert shape in count, count
    one = str(query.recorded_count(resolved, sa_dialect, query.Scope(keys=[(7,)])).compile(dialect=sa_dialect))
    assert "IN (__[POSTCOMPILE_" in one  # a single key as before: the guard's triggers bind PL/pgSQL variables


@pytest.mark.parametrize(
    ("values", "sizes"),
    [
        (list(range(1200)), [1200]),  # one array, however many values
        ([*range(600), *map(str, range(600))], [CHUNK, CHUNK, 200]),  # mixed types: IN lists under the bind limit
    ],
)
def test_in_chunks_splits_what_no_array_can_hold(values: list, sizes: list[int]) -> None:
    sa_dialect = sa.engine.make_url("postgresql+psycopg://h/d").get_dialect()()
    chunks = in_chunks(sa_dialect, sa.column("k"), values)
    bound = [list(c.compile(dialect=sa_dialect).params.values()) for c in chunks]
    assert [len(b[0]) for b in bound] == sizes and all(len(b) == 1 for b in bound)


def test_streaming_leaves_the_connection_as_it_was(db: Database) -> None:
    fill(db)
    cfg = parse_config(
        {
            "database": {"url": db.url},
            "rules": [RULE],
            "checks": [{"name": "no negative stock", "sql": "SELECT id FROM items WHERE remaining < 0"}],
        }
    )
    with connect(db.engine) as connection:
        report = CheckRun(connection, cfg).report()
        assert [c.failing for c in report.checks] == [0]
        assert "stream_results" not in connection.get_execution_options()
        assert connection.execute(sa.select(sa.func.count()).select_from(items)).scalar_one() == 8


def test_stream_yields_every_row_across_batches(db: Database) -> None:
    rows = 2 * 2000 + 7  # more than two of the batches the dialects fetch
    db.create(metadata)
    db.insert(items, [{"id": n, "total": n, "remaining": n} for n in range(rows)])
    statement = sa.select(items.c.id, items.c.total).order_by(items.c.id)
    with connect(db.engine) as connection:
        streamed = [tuple(row) for row in dialect_for(connection).stream(connection, statement)]
    assert streamed == [(n, n) for n in range(rows)]


def test_postgresql_stream_error_mid_way_is_a_database_error(pg: Database) -> None:
    # 1 / (g - 3000) fails on row 3000, after a first batch of rows has been delivered.
    failing = sa.select(sa.literal_column("1 / (g - 3000)")).select_from(sa.text("generate_series(1, 5000) AS g"))
    with connect(pg.engine) as connection:
        delivered = 0
        with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
            for _ in dialect_for(connection).stream(connection, failing):
                delivered += 1
        assert 0 < delivered < 3000
        connection.rollback()
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_postgresql_uuid_scope_keys(pg: Database) -> None:
    with pg.engine.begin() as connection:
        usage_logs.metadata.create_all(connection)
        usage_logs.generate(connection, items=40, seed=3)
    cfg = parse_config({"database": {"url": pg.url}, "rules": tomllib.loads(usage_logs.CONFIG)["rules"]})
    with connect(pg.engine) as connection:
        everything = CheckRun(connection, cfg, keep=None).report().rules[0].worst
        wanted = [d.key for d in everything[::3]]
        rule = resolve_rule(connection, cfg.rules[0])
        scoped = list(RuleScan(connection, rule, scope=query.Scope(keys=wanted), keep=None))
    assert isinstance(wanted[0][0], uuid.UUID)
    assert sorted(d.key for d in scoped) == sorted(wanted)
    assert [d for d in everything if d.key in wanted] == scoped


def test_postgresql_future_dated_for_each_time_type(pg: Database) -> None:
    """timestamp, timestamptz and date columns are each compared with now in their own type."""
    pg.execute("CREATE TABLE stock (id integer, qty integer)")
    pg.execute("CREATE TABLE moves (id integer, qty integer, at_ts timestamp, at_tz timestamptz, on_day date)")
    pg.execute("INSERT INTO stock VALUES (1, 3)")
    now, today = datetime.now(UTC), date.today()
    for days in (-2, 2, 2, -3):  # two moves in the future
        at = now + timedelta(days=days)
        pg.execute(
            "INSERT INTO moves VALUES (1, 1, :ts, :tz, :day)",
            {"ts": at.astimezone().replace(tzinfo=None), "tz": at, "day": today + timedelta(days=days)},
        )
    rules = [
        {
            "name": column,
            "recorded": {"table": "stock", "key": ["id"], "quantity": "qty"},
            "expected": [{"table": "moves", "key": ["id"], "quantity": "qty", "time": column}],
        }
        for column in ("at_ts", "at_tz", "on_day")
    ]
    with connect(pg.engine) as connection:
        connection.execute(sa.text("SET TIME ZONE 'Asia/Kolkata'"))  # timestamps are read in the session's zone
        report = CheckRun(connection, config(pg.url, *rules)).report()
    for result in report.rules:
        assert {f.kind: f.count for f in result.findings} == {"future_dated": 2}, result.name
        assert result.worst[0].delta == 1  # 4 moves against 3 recorded


def test_constant_quantity_counts_records(db: Database) -> None:
    """`quantity = 1` counts records (the pieces shape), NULL-free by construction."""
    fill(db)
    rule = {
        "name": "count",
        "recorded": {"table": "items", "key": ["id"], "quantity": "remaining"},
        "expected": [{"table": "logs", "key": ["item_id"], "quantity": 1, "where": "used IS NOT NULL"}],
    }
    with connect(db.engine) as connection:
        (result,) = CheckRun(connection, config(db.url, rule), keep=None).report().rules
    assert {d.key: d.delta for d in result.worst} == {(1,): 3 - 90, (2,): 2 - 50, (5,): 1 - 30}
    assert "null_quantity" not in {f.kind for f in result.findings}
    assert result.abs_drift == 87 + 48 + 29


def test_postgresql_time_column_must_be_a_time(pg: Database) -> None:
    pg.execute("CREATE TABLE stock (id integer, qty integer)")
    pg.execute("CREATE TABLE moves (id integer, qty integer, at text)")
    rule = {
        "name": "texts",
        "recorded": {"table": "stock", "key": ["id"], "quantity": "qty"},
        "expected": [{"table": "moves", "key": ["id"], "quantity": "qty", "time": "at"}],
    }
    with connect(pg.engine) as connection, pytest.raises(ConfigError, match=r"rule 'texts': expected\[0\]"):
        CheckRun(connection, config(pg.url, rule))


def test_recorded_key_is_unique_only_when_each_key_is_one_row(db: Database) -> None:
    """The joined comparison needs each key to be at most one recorded row, never NULL."""
    keyed = sa.MetaData()
    sa.Table("by_pk", keyed, sa.Column("id", sa.Integer, primary_key=True), sa.Column("q", sa.Integer))
    sa.Table(
        "by_unique",
        keyed,
        sa.Column("a", sa.Integer, nullable=False),
        sa.Column("b", sa.Integer, nullable=False),
        sa.Column("q", sa.Integer),
        sa.UniqueConstraint("a", "b"),
    )
    sa.Table("by_index", keyed, sa.Column("a", sa.Integer, nullable=False), sa.Index("ix_a", "a", unique=True))
    sa.Table("nullable", keyed, sa.Column("a", sa.Integer), sa.UniqueConstraint("a"))
    sa.Table("plain", keyed, sa.Column("a", sa.Integer, nullable=False))
    db.create(keyed)
    cases = {
        ("by_pk", ("id",)): True,
        ("by_unique", ("a", "b")): True,
        ("by_unique", ("b", "a")): True,  # the key's order does not matter
        ("by_unique", ("a",)): False,  # one column of the unique pair repeats
        ("by_index", ("a",)): True,
        ("nullable", ("a",)): False,  # unique, but NULLs may repeat
        ("plain", ("a",)): False,
    }
    with connect(db.engine) as connection:
        seen = {
            (table, key): resolve.recorded_key_is_unique(connection, _keyed_rule(table, key)) for table, key in cases
        }
    assert seen == cases


def test_postgresql_partial_unique_index_is_not_a_unique_key(pg: Database) -> None:
    pg.execute("CREATE TABLE stock (id integer NOT NULL, live boolean NOT NULL, qty integer)")
    pg.execute("CREATE UNIQUE INDEX stock_live ON stock (id) WHERE live")
    with connect(pg.engine) as connection:
        assert not resolve.recorded_key_is_unique(connection, _keyed_rule("stock", ("id",)))


def _keyed_rule(table: str, key: tuple[str, ...]):
    recorded = {"table": table, "key": list(key), "quantity": "q"}
    return config("sqlite://", {"name": "r", "recorded": recorded, "expected": [recorded]}).rules[0]


TWO_SOURCES = {
    "name": "stock",
    "recorded": {"table": "stock", "key": ["id"], "quantity": "remaining"},
    "expected": [
        {"table": "ins", "key": ["item_id"], "quantity": "qty", "time": "at"},
        {"table": "outs", "key": ["item_id"], "quantity": "qty", "sign": -1},
    ],
}
# key, recorded, rec_rows, rec_nulls, unit_value, grp, expected, records, future, null_qty, within
TWO_SOURCES_ROWS = [
    (None, 0, 0, 0, None, None, -7, 1, 0, 0, 0),
    (9, 0, 0, 0, None, None, 4, 1, 0, 0, 0),
    (2, 5, 1, 0, None, None, 7, 3, 1, 0, 0),
    (3, 0, 1, 0, None, None, -1, 2, 0, 1, 0),
    (4, 0, 1, 1, None, None, 0, 0, 0, 0, 0),  # a NULL recorded figure
]
# Only an opening figure (5 a row), read from the recorded rows themselves: no source to join.
OPENING_ONLY = {
    "name": "par",
    "recorded": {"table": "stock", "key": ["id"], "quantity": "remaining"},
    "expected": [{"table": "stock", "key": ["id"], "quantity": 5}],
}
OPENING_ONLY_ROWS = [
    (1, 10, 1, 0, None, None, 5, 1, 0, 0, 0),  # 5 against 10: -5
    (3, 0, 1, 0, None, None, 5, 1, 0, 0, 0),  # +5; item 2 holds 5: not reported
    (4, 0, 1, 1, None, None, 5, 1, 0, 0, 0),  # +5, a NULL recorded figure
]


SHAPE_CASES = pytest.mark.parametrize(
    ("rule", "truth"), [(TWO_SOURCES, TWO_SOURCES_ROWS), (OPENING_ONLY, OPENING_ONLY_ROWS)], ids=["two", "opening"]
)


@SHAPE_CASES
def test_the_grouped_comparison_gives_the_rows(db: Database, rule: dict, truth: list) -> None:
    """A keyed recorded table beside two sources with every finding planted, or beside only its opening
    figure: hand-computed rows from the portable shape, on every database."""
    comparison_rows_are(db, rule, truth, joined=False)


@SHAPE_CASES
def test_the_joined_comparison_gives_the_same_rows(pg: Database, rule: dict, truth: list) -> None:
    """The same cases through the FULL JOIN shape, which only PostgreSQL folds the comparison by."""
    assert dialect_for(pg.engine).joins_comparison
    comparison_rows_are(pg, rule, truth, joined=True)


def comparison_rows_are(db: Database, rule: dict, truth: list, *, joined: bool) -> None:
    two = sa.MetaData()
    sa.Table("stock", two, sa.Column("id", sa.Integer, primary_key=True), sa.Column("remaining", sa.Integer))
    sa.Table("ins", two, sa.Column("item_id", sa.Integer), sa.Column("qty", sa.Integer), sa.Column("at", sa.DateTime))
    sa.Table("outs", two, sa.Column("item_id", sa.Integer), sa.Column("qty", sa.Integer))
    db.create(two)
    past, future = datetime.now() - timedelta(days=1), datetime.now() + timedelta(days=30)
    db.insert(two.tables["stock"], [{"id": 1, "remaining": 10}, {"id": 2, "remaining": 5}, {"id": 3, "remaining": 0}])
    db.insert(two.tables["stock"], [{"id": 4, "remaining": None}])
    db.insert(
        two.tables["ins"],
        [
            {"item_id": 1, "qty": 10, "at": past},  # 10 = 10: fine, not reported
            {"item_id": 2, "qty": 8, "at": past},
            {"item_id": 2, "qty": 2, "at": future},  # 8 + 2 - 3 = 7 against 5: +2, one future-dated
            {"item_id": 9, "qty": 4, "at": past},  # an orphan: no stock row 9
        ],
    )
    db.insert(
        two.tables["outs"],
        [
            {"item_id": 2, "qty": 3},
            {"item_id": 3, "qty": 1},  # 0 - 1 = -1 against 0: negative expected
            {"item_id": 3, "qty": None},  # a NULL quantity counts 0
            {"item_id": None, "qty": 7},  # a NULL key
        ],
    )
    with connect(db.engine) as connection:
        resolved = resolve_rule(connection, config(db.url, rule).rules[0])
        assert resolve.recorded_key_is_unique(connection, resolved)
        compared = query.comparison(resolved, connection.dialect, dialect_for(connection), joined=joined)
        rows = [tuple(row) for row in connection.execute(compared)]
    assert rows == truth

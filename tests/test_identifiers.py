"""Any table or column name in a config: spaces, mixed case, hyphens, reserved words, non-ASCII
letters, schema-qualified names (with a dot inside a quoted part on PostgreSQL), in every field,
through check, apply, undo, sync (named keys and incremental rounds), backup and restore."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.databases import Database
from trueup.cli import app
from trueup.config import load_config
from trueup.db import open_engine
from trueup.names import join_name, split_name
from trueup.reconcile.sync import SyncOptions, run_round

runner = CliRunner()
EARLIER = datetime(2026, 1, 5, 9, 30)

CONFIG = """
[[rules]]
name = "lager"
[rules.recorded]
table = "Lager Bestand"
key = ["Artikel-Nr", "order"]
quantity = "Bestand_ä"
unit_value = "Preis/Stück %"
group = "group"
time = "Geändert am"
insert_missing = true
[rules.recorded.insert_defaults]
"Notiz" = "neu"

[[rules.expected]]
table = '{movements}'
key = ["artikel-nr", "ORDER"]   # case-insensitive: resolved to the database's spelling
quantity = "Menge"
time = "select"

[[rules.expected]]
from = "lager_log l"
key = ["l.Artikel-Nr", "l.order"]
quantity = "l.Menge ä"
sign = -1
sequence = "l.ID"
"""


@pytest.fixture
def schema(db: Database) -> Iterator[str]:
    """A schema to qualify the movements table with: one whose name holds a dot on PostgreSQL,
    the test's own database on MariaDB, `main` on SQLite."""
    if db.kind == "postgresql":
        name = f"presets_{uuid.uuid4().hex[:8]}.Lager"
        db.execute(f'CREATE SCHEMA "{name}"')
        yield name
        db.execute(f'DROP SCHEMA "{name}" CASCADE')
    elif db.kind == "mariadb":
        yield make_url(db.url).database or ""
    else:
        yield "main"


def build(db: Database, schema: str, tmp_path: Path) -> Path:
    metadata = sa.MetaData()
    stock = sa.Table(
        "Lager Bestand",
        metadata,
        sa.Column("Artikel-Nr", sa.String(20), primary_key=True),
        sa.Column("order", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Bestand_ä", sa.Integer, nullable=False),
        sa.Column("Preis/Stück %", sa.Numeric(10, 2)),
        sa.Column("group", sa.String(10)),
        sa.Column("Geändert am", sa.DateTime),
        sa.Column("Notiz", sa.String(20)),
    )
    movements = sa.Table(
        "Bewegungen-2024",
        metadata,
        sa.Column("ID", sa.Integer, primary_key=True),
        sa.Column("Artikel-Nr", sa.String(20)),
        sa.Column("order", sa.Integer),
        sa.Column("Menge", sa.Integer),
        sa.Column("select", sa.DateTime),
        schema=schema,
    )
    log = sa.Table(
        "lager_log",
        metadata,
        sa.Column("ID", sa.Integer, primary_key=True),
        sa.Column("Artikel-Nr", sa.String(20)),
        sa.Column("order", sa.Integer),
        sa.Column("Menge ä", sa.Integer),
    )
    db.create(metadata)
    db.insert(
        stock,
        [
            {"Artikel-Nr": "A-1", "order": 1, "Bestand_ä": 10, "Preis/Stück %": Decimal("2.50"), "group": "x"},
            {"Artikel-Nr": "A-2", "order": 1, "Bestand_ä": 5, "Preis/Stück %": Decimal("1.00"), "group": "y"},
        ],
    )
    db.insert(
        movements,
        [
            {"ID": 1, "Artikel-Nr": "A-1", "order": 1, "Menge": 12, "select": EARLIER},
            {"ID": 2, "Artikel-Nr": "A-2", "order": 1, "Menge": 5, "select": EARLIER},
            {"ID": 3, "Artikel-Nr": "B-1", "order": 2, "Menge": 7, "select": EARLIER},
        ],
    )
    db.insert(log, [{"ID": 1, "Artikel-Nr": "A-1", "order": 1, "Menge ä": 1}])
    config = tmp_path / "trueup.toml"
    movements_name = join_name([schema, "Bewegungen-2024"])
    config.write_text(f'[database]\nurl = "{db.url}"\n' + CONFIG.format(movements=movements_name), encoding="utf-8")
    return config


def stock(db: Database) -> dict[tuple[str, int], tuple[int, str | None]]:
    with db.engine.connect() as connection:
        table = sa.table(
            "Lager Bestand", sa.column("Artikel-Nr"), sa.column("order"), sa.column("Bestand_ä"), sa.column("Notiz")
        )
        rows = connection.execute(sa.select(table))
        return {(a, int(o)): (int(q), n) for a, o, q, n in rows}


def run(*args: str):
    return runner.invoke(app, list(args))


def test_torture_names_through_check_apply_undo_sync_and_backup(db: Database, schema: str, tmp_path: Path) -> None:
    config = build(db, schema, tmp_path)
    before = stock(db)

    checked = run("check", "-c", str(config), "-f", "json")
    assert checked.exit_code == 1, checked.output
    [rule] = json.loads(checked.stdout)["rules"]
    assert [(d["key"], d["recorded"], d["expected"], d["delta"]) for d in rule["drift"]] == [
        (["B-1", 2], 0, 7, 7),  # only the movements know it: inserted by apply (insert_missing)
        (["A-1", 1], 10, 11, 1),
    ]
    assert rule["value_impact"] == 2.5  # only A-1 has a unit value

    applied = run("apply", "-c", str(config), "-f", "json", "--backup-dir", str(tmp_path / "b"))
    assert applied.exit_code == 0, applied.output
    document = json.loads(applied.stdout)
    assert document["changed"] == 2
    assert stock(db) == {("A-1", 1): (11, None), ("A-2", 1): (5, None), ("B-1", 2): (7, "neu")}

    undone = run("undo", str(document["run_id"]), "-c", str(config), "--yes")
    assert undone.exit_code == 0, undone.output
    assert stock(db) == before

    synced = run("sync", "-c", str(config), "-r", "lager", "-k", "A-1,1", "--apply", "-f", "json")
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["corrected"] == 1
    assert stock(db)[("A-1", 1)] == (11, None)

    backups = tmp_path / "backups"
    made = run("backup", "-c", str(config), "--backup-dir", str(backups))
    assert made.exit_code == 0, made.output
    assert "Lager Bestand: 2 rows" in made.stdout
    [manifest] = backups.glob("*.manifest.json")
    verified = run("backup", "verify", str(manifest))
    assert verified.exit_code == 0, verified.output
    db.execute("DELETE FROM " + db.engine.dialect.identifier_preparer.quote("Lager Bestand"))
    restored = run("restore", str(manifest), "-c", str(config), "--confirm", "--backup-dir", str(tmp_path / "pre"))
    assert restored.exit_code == 0, restored.output
    assert stock(db) == {("A-1", 1): (11, None), ("A-2", 1): (5, None)}


def test_torture_names_in_incremental_sync_rounds(db: Database, schema: str, tmp_path: Path) -> None:
    config = load_config(build(db, schema, tmp_path))
    engine = open_engine(db.url)
    try:
        options = SyncOptions(full_every=10, overlap=timedelta(minutes=5))
        first = run_round(engine, config, "lager", options)
        assert first.kind == "full"
        assert {tuple(d.key): d.delta for d in first.drift} == {("A-1", 1): 1, ("B-1", 2): 7}
        db.execute(
            "INSERT INTO lager_log ({id}, {art}, {order}, {qty}) VALUES (2, :a, 1, 3)".format(
                **{
                    k: db.engine.dialect.identifier_preparer.quote(v)
                    for k, v in {"id": "ID", "art": "Artikel-Nr", "order": "order", "qty": "Menge ä"}.items()
                }
            ),
            {"a": "A-2"},
        )
        second = run_round(engine, config, "lager", options)
        assert second.kind == "incremental"
        # A-2 is found by the log's sequence column; the keys still drifted are looked at again
        assert {tuple(d.key): d.delta for d in second.drift} == {("A-1", 1): 1, ("A-2", 1): -3, ("B-1", 2): 7}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('table = "Lager Bestand"', 'table = "Lager Bestände"',
         "rule 'lager': recorded.table: no table 'Lager Bestände' in the database; did you mean `Lager Bestand`?"),
        ('quantity = "Bestand_ä"', 'quantity = "Bestand_a"',
         "rule 'lager': recorded.quantity: no column 'Bestand_a' in table 'Lager Bestand'; "
         "did you mean `Bestand_ä`?"),
        ('"Notiz" = "neu"', '"Notizen" = "neu"',
         "rule 'lager': recorded.insert_defaults: no column 'Notizen' in table 'Lager Bestand'; "
         "did you mean `Notiz`?"),
    ],
)  # fmt: skip
def test_a_missing_name_gets_the_nearest_existing_ones(
    db: Database, schema: str, tmp_path: Path, old: str, new: str, message: str
) -> None:
    config = build(db, schema, tmp_path)
    config.write_text(config.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    result = run("check", "-c", str(config))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {config}: {message}"


@given(st.lists(st.text(min_size=1), min_size=1, max_size=3))
def test_a_name_written_by_join_name_splits_back_into_its_parts(parts: list[str]) -> None:
    assert split_name(join_name(parts)) == tuple(parts)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("tabStock Ledger Entry", ("tabStock Ledger Entry",)),
        ("inventory.stock", ("inventory", "stock")),
        ('"my.schema".stock', ("my.schema", "stock")),
        ('"say ""hi""".Bestand_ä', ('say "hi"', "Bestand_ä")),
    ],
)
def test_split_name(text: str, parts: tuple[str, ...]) -> None:
    assert split_name(text) == parts


def test_a_name_matching_two_tables_but_for_case_names_both(pg: Database, tmp_path: Path) -> None:
    """PostgreSQL keeps `Stock` and `stock` apart: `STOCK` is then ambiguous, and both are named."""
    db = pg
    db.execute('CREATE TABLE "Stock" (id int, qty int)')
    db.execute("CREATE TABLE stock (id int, qty int)")
    config = tmp_path / "trueup.toml"
    config.write_text(
        f'[database]\nurl = "{db.url}"\n[[rules]]\nname = "s"\n[rules.recorded]\ntable = "STOCK"\nkey = ["id"]\n'
        'quantity = "qty"\n[[rules.expected]]\ntable = "stock"\nkey = ["id"]\nquantity = "qty"\n'
    )
    result = run("check", "-c", str(config))
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "rule 's': recorded.table: no table 'STOCK' in the database; did you mean `Stock` or `stock`?"
    )

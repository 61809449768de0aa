"""`trueup cost --write`: results stored by key and by SKU, as one run that undo reverts exactly."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

import trueup
from tests.databases import Database
from tests.shapes import dump
from trueup.cli import app
from trueup.config import Config
from trueup.cost import compute
from trueup.cost.store import store
from trueup.db import open_engine

runner = CliRunner()
EXAMPLE = Path(__file__).parent.parent / "examples" / "cost"


def cogs_by_sale(db: Database) -> dict[tuple[str, str], Decimal]:
    with db.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT sale_id, sku, cogs FROM trueup_cogs")).all()
    return {(sale, sku): Decimal(str(cogs)).normalize() for sale, sku, cogs in rows}


def test_dry_run_then_write_then_idempotent_then_undo(db: Database, tmp_path: Path) -> None:
    result = compute(EXAMPLE / "sales.csv", EXAMPLE / "lots.csv")
    with db.engine.connect() as connection:
        dry = store(connection, result)
    assert (dry.applied, dry.run_id, [t.inserted for t in dry.tables]) == (False, None, [5, 3])
    assert not sa.inspect(db.engine).has_table("trueup_cogs")  # a dry run creates nothing

    args = ["cost", "--sales", str(EXAMPLE / "sales.csv"), "--lots", str(EXAMPLE / "lots.csv"),
            "--out", str(tmp_path / "out"), "--write", "--apply", "-d", db.url]  # fmt: skip
    written = runner.invoke(app, args)
    assert written.exit_code == 1  # XYZ789 is quarantined; the others are costed and stored
    assert "trueup_cogs: wrote 5 new row(s)" in written.stdout
    assert cogs_by_sale(db) == {  # the worked example's figures, exactly
        ("1001", "ABC123"): Decimal("10"),
        ("1002", "ABC123"): Decimal("21"),
        ("1005", "ABC123"): Decimal("-8.5"),
        ("1004", "DEF456"): Decimal("490"),
        ("1006", "DEF456"): Decimal("135"),
    }
    assert sum(cogs_by_sale(db).values()) == Decimal("647.50")
    first = dump(db, "trueup_lots_remaining")
    images = db.rows("SELECT op, COUNT(*) FROM trueup_changes WHERE row_image IS NOT NULL GROUP BY op ORDER BY op")
    assert images == [("create", 2), ("insert", 5 + 3)]  # the two tables, and every row written

    again = runner.invoke(app, args)
    assert "nothing to write" in again.stdout
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM trueup_runs")).scalar() == 1

    lots = tmp_path / "lots.csv"
    lots.write_text((EXAMPLE / "lots.csv").read_text().replace("0.45", "0.50"))  # a corrected invoice
    changed = runner.invoke(app, [*args[:3], "--lots", str(lots), *args[5:]])
    assert "replaced" in changed.stdout
    assert cogs_by_sale(db)[("1006", "DEF456")] == Decimal("150")  # 300 @ 0.50
    run_id = max(r.id for r in _runs(db))
    assert trueup.undo(run_id, Config(), database=db.url).conflicts == ()
    assert dump(db, "trueup_lots_remaining") == first
    assert cogs_by_sale(db)[("1006", "DEF456")] == Decimal("135")


def test_a_quarantined_sku_keeps_what_was_stored_before(db: Database, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "lots.csv", tmp_path / "lots.csv")
    with open_engine(db.url).connect() as connection:  # trueup's engine (SQLite binds Decimal)
        store(connection, compute(EXAMPLE / "sales.csv", tmp_path / "lots.csv"), apply=True)
    before = {k: v for k, v in cogs_by_sale(db).items() if k[1] == "DEF456"}
    # DEF456's lots go missing from the next export: it is quarantined, and its stored figures stay.
    kept = [line for line in (tmp_path / "lots.csv").read_text().splitlines() if "DEF456" not in line]
    (tmp_path / "lots.csv").write_text("\n".join(kept) + "\n")
    result = compute(EXAMPLE / "sales.csv", tmp_path / "lots.csv")
    assert "DEF456" in result.quarantined
    with open_engine(db.url).connect() as connection:  # trueup's engine (SQLite binds Decimal)
        store(connection, result, apply=True)
    assert {k: v for k, v in cogs_by_sale(db).items() if k[1] == "DEF456"} == before


def _runs(db: Database):
    from trueup.reconcile import audit

    with db.engine.connect() as connection:
        return audit.list_runs(connection)


def test_undo_of_the_run_that_created_the_tables_drops_them_and_its_undo_brings_them_back(
    db: Database, tmp_path: Path
) -> None:
    assert runner.invoke(app, write_args(db, tmp_path)).exit_code == 1  # XYZ789 quarantined
    written = dump(db, "trueup_cogs"), dump(db, "trueup_lots_remaining")
    [run] = _runs(db)
    undone = trueup.undo(run.id, Config(), database=db.url)
    assert undone.dropped == ("trueup_cogs", "trueup_lots_remaining")
    assert not {"trueup_cogs", "trueup_lots_remaining"} & set(sa.inspect(db.engine).get_table_names())
    redone = trueup.undo(undone.run_id, Config(), database=db.url)
    assert (redone.reinserted, redone.conflicts) == (8, ())
    assert (dump(db, "trueup_cogs"), dump(db, "trueup_lots_remaining")) == written


CHILD = """
import sys
from trueup.cli import app
from trueup.reconcile import audit

finish = audit.finish_run


def finish_then_wait(*args, **kwargs):
    finish(*args, **kwargs)
    print("WRITTEN", flush=True)  # everything is written, nothing committed: the test kills us now
    sys.stdin.readline()


audit.finish_run = finish_then_wait
app(sys.argv[1:])
"""


def test_a_killed_write_leaves_no_table_behind_and_the_next_run_and_its_undo_clean_up(
    db: Database, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *write_args(db, tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "WRITTEN":
            break
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    tables = {"trueup_cogs", "trueup_lots_remaining"} & set(sa.inspect(db.engine).get_table_names())
    if db.kind == "mariadb":  # DDL commits there: the tables stay, empty, marked as trueup's
        assert tables == {"trueup_cogs", "trueup_lots_remaining"}
        assert db.scalar("SELECT COUNT(*) FROM trueup_cogs") == 0
    else:
        assert tables == set()
    assert db.scalar("SELECT COUNT(*) FROM trueup_runs") == 0

    again = runner.invoke(app, write_args(db, tmp_path))
    assert again.exit_code == 1 and "trueup_cogs: wrote 5 new row(s)" in again.stdout
    assert sum(cogs_by_sale(db).values()) == Decimal("647.50")
    [run] = _runs(db)
    assert trueup.undo(run.id, Config(), database=db.url).dropped == ("trueup_cogs", "trueup_lots_remaining")
    assert not {"trueup_cogs", "trueup_lots_remaining"} & set(sa.inspect(db.engine).get_table_names())


def write_args(db: Database, tmp_path: Path) -> list[str]:
    return ["cost", "--sales", str(EXAMPLE / "sales.csv"), "--lots", str(EXAMPLE / "lots.csv"),
            "--out", str(tmp_path / "out"), "--write", "--apply", "-d", db.url]  # fmt: skip

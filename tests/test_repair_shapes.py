"""Repair on the four incident shapes, on every database: plan = hand-computed deltas, apply makes
check clean, a second apply changes nothing, undo restores the exact original table."""

from __future__ import annotations

from pathlib import Path

import pytest

import trueup
from tests import shapes
from tests.databases import Database
from tests.shapes import dump, plain
from trueup.reconcile import audit
from trueup.reconcile.backup import verify_backup


@pytest.mark.parametrize("shape", sorted(shapes.SHAPES))
def test_plan_apply_again_undo(db: Database, shape: str, tmp_path: Path) -> None:
    module, load, table = shapes.SHAPES[shape]
    truth = load(db)
    config = shapes.config_for(db, module)
    original = dump(db, table)

    plan = trueup.plan(config, include_flagged=True)  # usage_logs has a negative expected figure
    [rule_plan] = plan.rules
    assert {plain(c.key): (c.recorded, c.expected, c.delta) for c in rule_plan.corrections} == truth

    result = trueup.apply(config, backup_dir=tmp_path, include_flagged=True)
    assert (result.status, result.changed, result.conflicts, result.residual) == ("verified", len(truth), (), 0)
    assert trueup.check(config, rules=[rule_plan.rule]).rules[0].drifted == 0
    after = dump(db, table)
    assert verify_backup(result.backup).ok

    with db.engine.connect() as connection:
        run = audit.get_run(connection, result.run_id)
        changes = audit.run_changes(connection, result.run_id)
    assert (run.kind, run.status, run.updated, run.inserted) == ("apply", "verified", len(truth), 0)
    assert {plain(c.key): (c.before, c.after) for c in changes} == {k: (r, e) for k, (r, e, _) in truth.items()}

    again = trueup.apply(config, backup_dir=tmp_path, include_flagged=True)
    assert (again.run_id, again.status, again.changed) == (None, "nothing to do", 0)
    assert dump(db, table) == after

    undone = trueup.undo(result.run_id, config)
    assert (undone.restored, undone.conflicts) == (len(truth), ())
    assert dump(db, table) == original


def test_insert_missing_rows_and_undo_deletes_them(db: Database, tmp_path: Path) -> None:
    shapes.load_batches(db)
    config = shapes.config_for(db, shapes.batches, insert_missing=True, insert_defaults={"pack_price": "9.99"})
    original = dump(db, "warehouse_inventory")

    result = trueup.apply(config, backup_dir=None)
    assert [(r.updated, r.inserted) for r in result.rules] == [(1, 1)]
    row = db.rows("SELECT packs, pack_price FROM warehouse_inventory WHERE product_code = 'D-4'")
    assert [(int(p), str(price)) for p, price in row] == [(8, "9.99")]

    undone = trueup.undo(result.run_id, config)
    assert (undone.restored, undone.deleted) == (1, 1)
    assert dump(db, "warehouse_inventory") == original

    redone = trueup.undo(undone.run_id, config)  # an undo is a run: undoing it re-applies exactly
    assert (redone.restored, redone.reinserted) == (1, 1)
    assert trueup.check(config).rules[0].drifted == 0

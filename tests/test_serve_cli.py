"""`trueup token` and `trueup serve` from the command line; scheduled rounds beside concurrent hooks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.databases import Database
from tests.serve_helpers import Shop, app_for, batches_shop, live_server
from trueup.cli import app
from trueup.reconcile import sync as sync_module

runner = CliRunner()


def test_token_create_prints_it_once_and_stores_only_its_hash(db: Database, tmp_path: Path) -> None:
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n')
    created = runner.invoke(app, ["token", "create", "warehouse", "--scope", "sync", "-c", str(config)])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("trueup_") and len(secret) > 40
    stored = db.rows("SELECT name, scope, sha256 FROM trueup_tokens")
    assert stored == [("warehouse", "sync", hashlib.sha256(secret.encode()).hexdigest())]
    again = runner.invoke(app, ["token", "create", "warehouse", "--scope", "read", "-c", str(config)])
    assert again.exit_code == 2 and "a token named 'warehouse' exists" in again.output
    bad_scope = runner.invoke(app, ["token", "create", "x", "--scope", "root", "-c", str(config)])
    assert bad_scope.exit_code == 2

    listed = runner.invoke(app, ["token", "list", "-c", str(config)])
    assert listed.exit_code == 0 and listed.stdout.startswith("warehouse\tsync\t") and secret not in listed.stdout
    assert runner.invoke(app, ["token", "revoke", "warehouse", "-c", str(config)]).exit_code == 0
    assert db.rows("SELECT name FROM trueup_tokens") == []
    gone = runner.invoke(app, ["token", "revoke", "warehouse", "-c", str(config)])
    assert gone.exit_code == 2 and "no token named 'warehouse'" in gone.output


def test_serve_refuses_other_addresses_until_a_token_exists(sqlite_db: Database, tmp_path: Path) -> None:
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "{sqlite_db.url}"\n')
    refused = runner.invoke(app, ["serve", "-c", str(config), "--host", "0.0.0.0"])
    assert refused.exit_code == 2
    assert "refusing to listen on 0.0.0.0: create a token first" in refused.output


def test_importing_trueup_and_its_cli_loads_no_web_framework() -> None:
    code = (
        "import sys, trueup, trueup.cli, trueup.serve.tokens; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.slow
def test_sixteen_concurrent_hooks_never_overlap_a_watch_round(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop: Shop = batches_shop(db, tmp_path)
    running, most, lock = [0], [0], threading.Lock()
    kinds: list[str] = []
    real_round = sync_module._round

    def counted(connection, config, rule, options, full, keys, *rest):  # type: ignore[no-untyped-def]
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            kinds.append("keys" if keys else "schedule")
        try:
            return real_round(connection, config, rule, options, full, keys, *rest)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(sync_module, "_round", counted)
    application = app_for(shop, watch=timedelta(seconds=0.01), watch_apply=True)
    with live_server(application) as base, httpx.Client(base_url=base, timeout=60) as http:

        def hook(n: int) -> str:
            key = ["A-1", "B-2", "C-3"][n % 3]
            body = {"rule": "batches", "keys": [[key]], "apply": True, "wait": 5}
            answer = http.post("/api/sync", json=body, headers=shop.auth("sync"))
            assert answer.status_code == 200, answer.text
            return answer.json()["status"]

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(hook, range(32)))
    assert most[0] == 1  # never two rounds of the rule at once, hooks and schedule alike
    assert "keys" in kinds and "schedule" in kinds
    assert set(statuses) <= {"clean", "corrected", "queued"}  # a hook that met a round left its key to it
    assert shop.packs() == {"A-1": 10, "B-2": 3, "C-3": 0}

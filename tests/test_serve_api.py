"""The HTTP API against real databases: happy path, bad input (400 naming the field, nothing written), auth."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.databases import Database
from tests.serve_helpers import Shop, batches_shop, client
from trueup.cli import app
from trueup.serve.service import TOKEN_SECONDS

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cost"


@pytest.fixture
def shop(db: Database, tmp_path: Path) -> Shop:
    return batches_shop(db, tmp_path)


def cli_json(shop: Shop, *args: str) -> dict:
    result = runner.invoke(app, [*args, "-c", str(shop.config_path), "-f", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def run_count(shop: Shop) -> int:
    with client(shop) as api:
        return len(api.get("/api/runs", headers=shop.auth("read")).json()["runs"])


def test_health_needs_no_token(shop: Shop) -> None:
    with client(shop) as api:
        answer = api.get("/api/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", "/api/rules", "read"),
        ("POST", "/api/check", "read"),
        ("POST", "/api/sync", "sync"),
        ("POST", "/api/apply", "write"),
        ("POST", "/api/runs/1/resume", "write"),
        ("POST", "/api/runs/1/undo", "admin"),
        ("GET", "/api/tokens", "admin"),
        ("POST", "/api/ledger/issue", "sync"),
        ("GET", "/metrics", "read"),
    ],
)
def test_auth_401_without_a_token_and_403_below_the_scope(shop: Shop, method: str, path: str, needs: str) -> None:
    body = {"rule": "batches", "keys": [["B-2"]]} if path == "/api/sync" else {}
    with client(shop) as api:
        missing = api.request(method, path, json=body)
        wrong = api.request(method, path, json=body, headers={"Authorization": "Bearer trueup_not-a-token"})
        below = SCOPES_BELOW[needs]
        small = api.request(method, path, json=body, headers=shop.auth(below)) if below else None
    assert missing.status_code == 401 and missing.json()["error"]["kind"] == "unauthorized"
    assert wrong.status_code == 401
    if small is not None:
        assert small.status_code == 403, small.text
        assert small.json()["error"] == {
            "kind": "forbidden",
            "message": f"token '{below}-token' has scope '{below}'; this needs '{needs}'",
        }
    assert shop.packs()["B-2"] == 5  # nothing was written


SCOPES_BELOW = {"read": None, "sync": "read", "write": "sync", "admin": "write"}


def test_a_revoked_token_is_refused_at_once_through_the_api_and_within_a_second_from_elsewhere(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]  # the remembered tokens' clock, moved by hand
    monkeypatch.setattr("trueup.expiring.time", SimpleNamespace(monotonic=lambda: clock[0]))
    with client(shop) as api:
        used = api.get("/api/runs", headers=shop.auth("read"))  # verified, and remembered
        revoked = api.delete("/api/tokens/read-token", headers=shop.auth("admin"))
        after = api.get("/api/runs", headers=shop.auth("read"))
        assert api.get("/api/runs", headers=shop.auth("sync")).status_code == 200
        shop.db.execute("DELETE FROM trueup_tokens WHERE name = 'sync-token'")  # as `trueup token revoke` does
        within = api.get("/api/runs", headers=shop.auth("sync"))
        clock[0] += TOKEN_SECONDS
        later = api.get("/api/runs", headers=shop.auth("sync"))
    assert [used.status_code, revoked.status_code, after.status_code] == [200, 200, 401]
    assert [within.status_code, later.status_code] == [200, 401]
    assert later.json()["error"]["message"] == "the token is not valid (revoked, or never created here)"


def test_check_is_the_cli_document(shop: Shop) -> None:
    with client(shop) as api:
        answer = api.post("/api/check", json={}, headers=shop.auth("read"))
        limited = api.post("/api/check", json={"rules": ["batches"], "limit": 1}, headers=shop.auth("read"))
    assert answer.status_code == 200
    assert answer.json() == cli_json(shop, "check")
    [rule] = limited.json()["rules"]
    assert rule["drift"] == [{"key": ["B-2"], "recorded": 5, "expected": 3, "delta": -2, "value": -2}]
    assert (rule["drifted"], rule["abs_drift"]) == (2, 3)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/check", {"rules": ["nope"]}, "rules"),
        ("/api/check", {"limit": -1}, "limit"),
        ("/api/check", {"limmit": 1}, "limmit"),
        ("/api/plan", {"keys": [["B-2", "extra"]]}, "keys.0"),
        ("/api/plan", {"keys": "B-2"}, "keys"),
        ("/api/apply", {"max_changes": -1}, "max_changes"),
        ("/api/apply", {"rules": ["nope"]}, "rules"),
        ("/api/apply", {"plan": {"format": "nope"}}, "plan"),
        ("/api/sync", {"keys": [["B-2"]]}, "rule"),
        ("/api/sync", {"rule": "nope", "keys": [["B-2"]], "apply": True}, "rule"),
        ("/api/sync", {"rule": "batches", "keys": [], "apply": True}, "keys"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(shop: Shop, path: str, body: dict, field: str) -> None:
    with client(shop) as api:
        answer = api.post(path, json=body, headers=shop.auth("admin"))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert "Traceback" not in answer.text and shop.db.url.split("@")[-1] not in error["message"]
    assert shop.packs() == {"A-1": 10, "B-2": 5, "C-3": 1}
    assert run_count(shop) == 0


def test_plan_lists_the_corrections_without_the_database(shop: Shop) -> None:
    with client(shop) as api:
        answer = api.post("/api/plan", json={"rules": ["batches"]}, headers=shop.auth("read"))
    document = answer.json()
    [rule] = document["rules"]
    assert [(c["key"], c["recorded"], c["expected"]) for c in rule["corrections"]] == [(["B-2"], 5, 3), (["C-3"], 1, 0)]
    assert "database" not in document
    assert shop.packs()["B-2"] == 5


def test_apply_runs_undo_round_trip_matches_the_cli(shop: Shop) -> None:
    with client(shop) as api:
        applied = api.post("/api/apply", json={}, headers=shop.auth("write"))
        assert applied.status_code == 200, applied.text
        document = applied.json()
        assert (document["changed"], document["status"], document["conflicts"]) == (2, "verified", [])
        run_id = document["run_id"]
        assert shop.packs() == {"A-1": 10, "B-2": 3, "C-3": 0}

        shown = api.get(f"/api/runs/{run_id}", headers=shop.auth("read")).json()
        cli_shown = cli_json(shop, "runs", "show", str(run_id))
        assert {"run": shown["run"], "changes": shown["changes"]} == cli_shown
        assert shown["run"]["os_user"] == "write-token"  # who did it: the token's name
        assert shown["run"]["triggered_by"] == "api"
        page = api.get(f"/api/runs/{run_id}?limit=1&offset=1", headers=shop.auth("read")).json()
        assert [c["key"] for c in page["changes"]] == [["C-3"]]
        assert page["page"] == {"limit": 1, "offset": 1, "total": 2}

        undone = api.post(f"/api/runs/{run_id}/undo", json={}, headers=shop.auth("admin"))
        assert undone.status_code == 200, undone.text
        assert undone.json()["restored"] == 2
        assert shop.packs() == {"A-1": 10, "B-2": 5, "C-3": 1}
        listed = api.get("/api/runs", headers=shop.auth("read")).json()
    assert listed == cli_json(shop, "runs")
    assert [(r["kind"], r["os_user"], r["status"]) for r in listed["runs"]] == [
        ("undo", "admin-token", "verified"),
        ("apply", "write-token", "undone"),
    ]


def test_chunked_apply_over_http_is_one_run_of_chunks_that_cannot_be_resumed_once_done(shop: Shop) -> None:
    with client(shop) as api:
        applied = api.post("/api/apply", json={"chunk_size": 1}, headers=shop.auth("write"))
        assert applied.status_code == 200, applied.text
        document = applied.json()
        assert (document["changed"], document["status"]) == (2, "verified")
        run_id = document["run_id"]
        finished = api.post(f"/api/runs/{run_id}/resume", json={}, headers=shop.auth("write"))
        whole = api.post("/api/apply", json={}, headers=shop.auth("write"))  # nothing drifts now: no run
        undone = api.post(f"/api/runs/{run_id}/undo", json={}, headers=shop.auth("admin"))
        assert undone.status_code == 200, undone.text
        with_a_plan = api.post("/api/apply", json={"chunk_size": 1, "plan": {}}, headers=shop.auth("write"))
        zero = api.post("/api/apply", json={"chunk_size": 0}, headers=shop.auth("write"))
        reader = api.post(f"/api/runs/{run_id}/resume", json={}, headers=shop.auth("read"))
    committed = f"SELECT COUNT(*) FROM trueup_chunks WHERE run_id = {run_id} AND committed_at IS NOT NULL"
    assert shop.db.scalar(committed) == 2
    assert finished.status_code == 422
    assert f"run {run_id} is not unfinished (it is verified)" in finished.json()["error"]["message"]
    assert whole.json()["changed"] == 0
    assert shop.packs() == {"A-1": 10, "B-2": 5, "C-3": 1}
    assert with_a_plan.status_code == 400
    assert zero.status_code == 400 and zero.json()["error"]["field"] == "chunk_size"
    assert reader.status_code == 403


def test_undo_conflict_is_409_and_changes_nothing(shop: Shop) -> None:
    with client(shop) as api:
        run_id = api.post("/api/apply", json={}, headers=shop.auth("write")).json()["run_id"]
        shop.db.execute("UPDATE warehouse_inventory SET packs = 7 WHERE product_code = 'B-2'")
        refused = api.post(f"/api/runs/{run_id}/undo", json={}, headers=shop.auth("admin"))
        missing = api.get("/api/runs/999", headers=shop.auth("read"))
    assert refused.status_code == 409 and refused.json()["error"]["kind"] == "conflict"
    assert shop.packs() == {"A-1": 10, "B-2": 7, "C-3": 0}
    assert missing.status_code == 404 and missing.json()["error"]["kind"] == "not_found"


def test_saved_plan_with_a_moved_key_is_409_and_applies_the_rest(shop: Shop) -> None:
    with client(shop) as api:
        plan = api.post("/api/plan", json={}, headers=shop.auth("read")).json()
        shop.db.execute("UPDATE warehouse_inventory SET packs = 6 WHERE product_code = 'B-2'")
        answer = api.post("/api/apply", json={"plan": plan}, headers=shop.auth("write"))
    assert answer.status_code == 409
    document = answer.json()
    assert document["error"]["kind"] == "conflict"
    assert [c["key"] for c in document["conflicts"]] == [["B-2"]]
    assert document["changed"] == 1
    assert shop.packs() == {"A-1": 10, "B-2": 6, "C-3": 0}


def test_guard_rail_refusal_is_422_and_writes_nothing(shop: Shop) -> None:
    with client(shop) as api:
        answer = api.post("/api/apply", json={"max_changes": 1}, headers=shop.auth("write"))
    assert answer.status_code == 422 and answer.json()["error"]["kind"] == "refused"
    assert shop.packs()["B-2"] == 5 and run_count(shop) == 0


def test_production_needs_confirm(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUEUP_ENV", "production")
    with client(shop) as api:
        refused = api.post("/api/apply", json={}, headers=shop.auth("write"))
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "confirm"
        assert shop.packs()["B-2"] == 5
        confirmed = api.post("/api/apply", json={"confirm": True}, headers=shop.auth("write"))
    assert confirmed.status_code == 200 and shop.packs()["B-2"] == 3


def test_sync_hook_repairs_exactly_the_named_key(shop: Shop) -> None:
    with client(shop) as api:
        answer = api.post(
            "/api/sync",
            json={"rule": "batches", "keys": [["B-2"]], "apply": True, "triggered_by": "sale_creation"},
            headers=shop.auth("sync"),
        )
        history = api.get("/api/history?rule=batches&key=B-2", headers=shop.auth("read")).json()["history"]
        bad_since = api.get("/api/history?since=soon", headers=shop.auth("read"))
    document = answer.json()
    assert answer.status_code == 200, answer.text
    assert {k: document[k] for k in ("rule", "checked", "drifted", "corrected", "status")} == {
        "rule": "batches",
        "checked": 1,
        "drifted": 1,
        "corrected": 1,
        "status": "corrected",
    }
    assert document["drift"] == [{"key": ["B-2"], "recorded": 5, "expected": 3, "delta": -2, "value": -2}]
    assert shop.packs() == {"A-1": 10, "B-2": 3, "C-3": 1}  # C-3 drifts still: it was not named
    assert [(h["key"], h["delta"], h["run_id"]) for h in history] == [(["B-2"], -2, document["run_id"])]
    assert bad_since.status_code == 400 and bad_since.json()["error"]["field"] == "since"
    run = shop.db.rows(f"SELECT os_user, triggered_by FROM trueup_runs WHERE id = {document['run_id']}")
    assert run == [("sync-token", "sale_creation")]


def test_ledger_idempotency_over_http(shop: Shop) -> None:
    with client(shop) as api:
        sync = shop.auth("sync")
        received = api.post(
            "/api/ledger/receive",
            json={"item": "pipe", "location": "shop", "qty": "10", "unit_cost": "0.40", "lot": "ROLL-1"},
            headers=sync,
        )
        assert received.status_code == 200, received.text
        sale = {"item": "pipe", "location": "shop", "qty": "3"}
        first = api.post("/api/ledger/issue", json=sale, headers={**sync, "Idempotency-Key": "order-1"})
        again = api.post("/api/ledger/issue", json=sale, headers={**sync, "Idempotency-Key": "order-1"})
        other = api.post("/api/ledger/issue", json={**sale, "qty": "4"}, headers={**sync, "Idempotency-Key": "order-1"})
        short = api.post("/api/ledger/issue", json={**sale, "qty": "100"}, headers=sync)
        bad = api.post("/api/ledger/issue", json={**sale, "qty": "-1"}, headers=sync)
        balance = api.get("/api/ledger/balance?item=pipe&location=shop", headers=shop.auth("read")).json()
        valuation = api.get("/api/ledger/valuation?item=pipe", headers=shop.auth("read")).json()
        history = api.get("/api/ledger/lots/ROLL-1/history", headers=shop.auth("read")).json()
        api.post("/api/ledger/reservations", json={**sale, "qty": "2", "hold_for": "order-2"}, headers=sync)
        positions = api.get("/api/ledger/positions?item=pipe", headers=shop.auth("read")).json()
    assert first.status_code == 200 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and first.json()["cost"] == 1.2
    assert other.status_code == 409 and other.json()["error"]["kind"] == "idempotency_conflict"
    assert short.status_code == 409 and short.json()["error"]["kind"] == "insufficient_stock"
    assert bad.status_code == 400
    assert balance["balance"] == 7  # one issue of 3, however many retries
    assert [(v["lot"], v["quantity"], v["value"]) for v in valuation] == [("ROLL-1", 7, 2.8)]
    assert [e["kind"] for e in history] == ["receive", "issue"]
    assert positions == [{"location": "shop", "on_hand": 7, "reserved": 2, "available": 5}]


@pytest.mark.parametrize("at", [0.25, 1733000000, True])
def test_a_posting_time_given_as_a_number_is_400_and_posts_nothing(shop: Shop, at: object) -> None:
    """pydantic alone reads a number as seconds after 1970; the schema says text (ISO 8601)."""
    with client(shop) as api:
        body = {"item": "pipe", "location": "shop", "counted": "2", "at": at}
        answer = api.post("/api/ledger/adjust", json=body, headers=shop.auth("sync"))
        fine = api.post("/api/ledger/adjust", json={**body, "at": "2026-12-01T09:30:00Z"}, headers=shop.auth("sync"))
        balance = api.get("/api/ledger/balance?item=pipe&location=shop", headers=shop.auth("read"))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "at"
    assert "ISO 8601" in answer.json()["error"]["message"]
    assert fine.status_code == 200, fine.text
    assert balance.json()["balance"] == 2  # the one adjustment given as text


def test_cost_upload_reads_the_quarantine_and_offers_the_files(shop: Shop) -> None:
    with client(shop) as api:
        files = {
            "sales": ("sales.csv", (EXAMPLES / "sales.csv").read_bytes(), "text/csv"),
            "lots": ("lots.csv", (EXAMPLES / "lots.csv").read_bytes(), "text/csv"),
        }
        answer = api.post("/api/cost", files=files, headers=shop.auth("read"))
        assert answer.status_code == 200, answer.text
        document = answer.json()
        download = api.get(document["files"]["quarantine.csv"], headers=shop.auth("read"))
        writing = api.post("/api/cost", files=files, data={"write": "true"}, headers=shop.auth("read"))
        neither = api.post("/api/cost", files={"sales": files["sales"]}, headers=shop.auth("read"))
        stored = api.post("/api/cost", files=files, data={"write": "true", "apply": "true"}, headers=shop.auth("write"))
    assert (document["summary"]["cogs"], document["summary"]["quarantined"]) == (647.5, 1)
    [finding] = document["findings"]
    assert (finding["sku"], finding["category"]) == ("XYZ789", "missing_lots")
    assert [s["where"] for s in finding["sources"]] == ["sales.csv:4"]
    assert download.status_code == 200 and "XYZ789" in download.text
    assert writing.status_code == 403
    assert neither.status_code == 400 and neither.json()["error"]["field"] == "lots"
    database = stored.json()["database"]
    assert stored.status_code == 200 and database["applied"] and database["changed"] > 0
    run = shop.db.rows(f"SELECT kind, os_user, triggered_by FROM trueup_runs WHERE id = {database['run_id']}")
    assert run == [("cost", "write-token", "api")]


def test_metrics_count_requests_by_route(shop: Shop) -> None:
    with client(shop) as api:
        api.post("/api/sync", json={"rule": "batches", "keys": [["A-1"]]}, headers=shop.auth("sync"))
        api.get("/api/runs/5", headers=shop.auth("read"))
        text = api.get("/metrics", headers=shop.auth("read")).text
    assert 'trueup_http_requests_total{method="POST",route="/api/sync",status="200"} 1.0' in text
    assert 'trueup_http_requests_total{method="GET",route="/api/runs/{run_id}",status="404"} 1.0' in text
    assert 'trueup_items_corrected_total{rule="batches"}' in text  # a hook's round counts its corrections
    assert 'trueup_items_checked{rule="batches"}' not in text  # but one key is not the rule's state
    assert shop.tokens["read"] not in text


def test_bodies_over_the_limit_are_413(db: Database, tmp_path: Path) -> None:
    shop = batches_shop(db, tmp_path, extra="[serve]\nmax_body_kb = 1\n")
    with client(shop) as api:
        answer = api.post("/api/check", content=b"{" + b" " * 4096 + b"}", headers=shop.auth("read"))
    assert answer.status_code == 413 and answer.json()["error"]["kind"] == "too_large"


def test_cors_is_off_unless_origins_are_listed(db: Database, tmp_path: Path) -> None:
    shop = batches_shop(db, tmp_path, extra='[serve]\ncors_origins = ["https://shop.example"]\n')
    with client(shop) as api:
        allowed = api.options(
            "/api/sync", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        )
        other = api.options(
            "/api/sync", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in other.headers


def test_an_unreachable_database_is_503_without_its_address(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from trueup.config import parse_config
    from trueup.serve.app import create_app
    from trueup.serve.service import Service

    url = "postgresql://trueup:s3cret@127.0.0.1:1/shop?connect_timeout=2"
    with TestClient(create_app(Service(parse_config({"database": {"url": url}})))) as api:
        health = api.get("/api/health")
        rules = api.get("/api/rules", headers={"Authorization": "Bearer trueup_x"})
    assert health.status_code == 503 and health.json()["error"]["kind"] == "unreachable"
    assert rules.status_code == 503
    assert "s3cret" not in health.text + rules.text and "127.0.0.1" not in health.text + rules.text


def test_restore_a_backup_needs_admin_and_confirm(db: Database, tmp_path: Path) -> None:
    if db.kind != "sqlite":
        pytest.importorskip("shutil").which("pg_dump" if db.kind == "postgresql" else "mysqldump") or pytest.skip(
            "no dump tool"
        )
    shop = batches_shop(db, tmp_path, extra=f'[serve]\nbackup_dir = "{tmp_path / "backups"}"\n')
    with client(shop) as api:
        applied = api.post("/api/apply", json={}, headers=shop.auth("write")).json()
        assert applied["backup"] is not None and shop.packs()["B-2"] == 3
        [backup] = api.get("/api/backups", headers=shop.auth("admin")).json()["backups"]
        assert "database" not in backup
        name = backup["file"]
        unconfirmed = api.post(f"/api/backups/{name}/restore", json={}, headers=shop.auth("admin"))
        small = api.post(f"/api/backups/{name}/restore", json={"confirm": True}, headers=shop.auth("write"))
        missing = api.post("/api/backups/nope.dump/restore", json={"confirm": True}, headers=shop.auth("admin"))
        assert shop.packs()["B-2"] == 3
        restored = api.post(f"/api/backups/{name}/restore", json={"confirm": True}, headers=shop.auth("admin"))
    assert unconfirmed.status_code == 422 and unconfirmed.json()["error"]["field"] == "confirm"
    assert small.status_code == 403 and missing.status_code == 404
    assert restored.status_code == 200, restored.text
    assert shop.packs() == {"A-1": 10, "B-2": 5, "C-3": 1}
    assert restored.json()["run_id"] > applied["run_id"] and restored.json()["before"]  # a run, backed up first


def test_input_is_taken_as_typed_and_unknown_query_parameters_are_refused(shop: Shop) -> None:
    with client(shop) as api:
        read = shop.auth("read")
        flag_as_number = api.post("/api/check", json={"limit": False}, headers=read)
        misspelt = api.get("/api/runs?limt=5", headers=read)
        twice = api.get("/api/runs?limit=1&limit=2", headers=read)
        wrong_method = api.request("OPTIONS", "/api/tokens", headers=shop.auth("admin"))
        not_a_post = api.post("/api/runs/1", headers=read)
    assert flag_as_number.status_code == 400 and flag_as_number.json()["error"]["field"] == "limit"
    assert misspelt.status_code == 400
    assert misspelt.json()["error"] == {
        "kind": "bad_request",
        "message": "query parameter 'limt' is not a parameter of this endpoint",
        "field": "limt",
    }
    assert twice.json()["error"]["message"] == "query parameter 'limit' is given more than once"
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET, POST"
    assert not_a_post.status_code == 405 and not_a_post.headers["allow"] == "GET"

"""Dashboard security without a browser: sessions, cookie flags, CSRF, scopes, nothing secret in a page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.databases import Database
from tests.serve_helpers import Shop, batches_shop, client


@pytest.fixture
def shop(sqlite_db: Database, tmp_path: Path) -> Shop:
    return batches_shop(sqlite_db, tmp_path)


def sign_in(web, secret: str):  # type: ignore[no-untyped-def]
    form = web.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    return web.post("/signin", data={"token": secret, "csrf": csrf}, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_session_cookie_is_httponly_and_samesite_strict(shop: Shop) -> None:
    with client(shop) as web:
        assert web.get("/", follow_redirects=False).headers["location"] == "/signin"
        answer = sign_in(web, shop.tokens["read"])
        wrong = sign_in(web, "trueup_wrong")
    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303 and cookie.startswith("trueup_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # plain HTTP here
    assert wrong.status_code == 401 and "That token is not valid here." in wrong.text


def test_signin_without_its_csrf_token_is_refused(shop: Shop) -> None:
    with client(shop) as web:
        answer = web.post("/signin", data={"token": shop.tokens["admin"], "csrf": "forged"}, follow_redirects=False)
    assert answer.status_code == 403 and "trueup_session" not in answer.headers.get("set-cookie", "")


def test_state_changing_forms_need_the_csrf_token(shop: Shop) -> None:
    with client(shop) as web:
        sign_in(web, shop.tokens["admin"])
        plan = web.get("/rules/batches/plan").text
        saved = re.search(r'name="plan" value="([^"]+)"', plan).group(1).replace("&#34;", '"')
        form = {"plan": saved, "max_changes": "2", "max_abs_delta": "2", "confirm": "true"}
        forged = web.post("/rules/batches/apply", data={**form, "csrf": "forged"}, follow_redirects=False)
        assert forged.status_code == 403 and shop.packs()["B-2"] == 5
        unconfirmed = web.post(
            "/rules/batches/apply", data={**form, "confirm": "", "csrf": csrf_of(plan)}, follow_redirects=False
        )
        assert unconfirmed.status_code == 400 and shop.packs()["B-2"] == 5
        applied = web.post("/rules/batches/apply", data={**form, "csrf": csrf_of(plan)}, follow_redirects=False)
    assert applied.status_code == 303 and applied.headers["location"] == "/runs/1?applied=1"
    assert shop.packs() == {"A-1": 10, "B-2": 3, "C-3": 0}


def test_pages_respect_scopes_and_show_no_secret(shop: Shop) -> None:
    with client(shop) as web:
        sign_in(web, shop.tokens["read"])
        pages = [web.get(path) for path in ("/", "/rules/batches", "/runs", "/cost", "/ledger")]
        plan = web.get("/rules/batches/plan")
    assert [p.status_code for p in pages] == [200] * 5
    assert plan.status_code == 403 and "this needs &#39;write&#39;" in plan.text
    for answer in [*pages, plan]:
        for secret in (*shop.tokens.values(), str(shop.db.url)):
            assert secret not in answer.text
    assert "Plan a repair" not in pages[1].text  # a reader is not offered what it cannot do


def test_a_revoked_token_signs_its_sessions_out(shop: Shop) -> None:
    with client(shop) as web:
        sign_in(web, shop.tokens["write"])
        assert web.get("/runs").status_code == 200
        shop.db.execute("DELETE FROM trueup_tokens WHERE name = 'write-token'")
        after = web.get("/runs", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"] == "/signin"


def test_undo_conflict_shows_the_moved_rows_and_changes_nothing(shop: Shop) -> None:
    with client(shop) as web:
        sign_in(web, shop.tokens["admin"])
        api = {"Authorization": f"Bearer {shop.tokens['write']}"}
        run_id = web.post("/api/apply", json={}, headers=api).json()["run_id"]
        shop.db.execute("UPDATE warehouse_inventory SET packs = 9 WHERE product_code = 'B-2'")
        page = web.get(f"/runs/{run_id}").text
        answer = web.post(f"/runs/{run_id}/undo", data={"confirm": "true", "csrf": csrf_of(page)})
    assert answer.status_code == 409
    assert "refused: nothing was changed" in answer.text and "B-2" in answer.text
    assert shop.packs() == {"A-1": 10, "B-2": 9, "C-3": 0}

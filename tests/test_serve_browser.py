"""The dashboard in real headless Chromium (Debian's), driven by Playwright: the operator's whole round.

Sign in, see the overview, open a rule, plan, apply, see the run, undo it,
upload a cost export and read a quarantine finding. A screenshot of every
step is saved under build/screenshots/ on every run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.databases import Database
from tests.serve_helpers import app_for, batches_shop, live_server

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cost"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the browser test: /usr/bin/chromium is missing (apt-get install chromium)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_operator_signs_in_repairs_undoes_and_reads_the_quarantine(
    browser, sqlite_db: Database, tmp_path: Path
) -> None:
    shop = batches_shop(sqlite_db, tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app_for(shop)) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 900}, timezone_id="Europe/Berlin")

        def shot(name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

        page.goto(base + "/")
        assert page.url == base + "/signin"
        page.fill("input[name=token]", shop.tokens["admin"])
        shot("01-signin")
        page.click("button.primary")
        page.wait_for_url(base + "/")
        row = page.locator("tr", has=page.locator("a", has_text="batches"))
        assert row.locator("td").nth(2).inner_text() == "2"  # drifted
        assert "stale" in (row.get_attribute("class") or "")  # no sync round yet
        shot("02-overview")

        page.click("text=batches")
        page.wait_for_url(base + "/rules/batches")
        worst = page.locator("table").first.locator("tr").nth(1).locator("td")
        assert [worst.nth(i).inner_text() for i in range(4)] == ["B-2", "5", "3", "-2"]
        shot("03-rule")

        page.click("text=Plan a repair")
        page.wait_for_url(base + "/rules/batches/plan")
        assert page.locator("button.primary").inner_text() == "Apply 2 correction(s)"
        shot("04-plan")
        page.check("input[name=confirm]")
        page.click("button.primary")
        page.wait_for_url("**/runs/*?applied=1")
        assert "Run 1 applied: 2 row(s) updated" in page.inner_text("main")
        assert shop.packs() == {"A-1": 10, "B-2": 3, "C-3": 0}
        shot("05-run")

        page.check("input[name=confirm]")
        page.click("button.danger")
        page.wait_for_url(base + "/runs/2")
        assert "undo of run 1" in page.inner_text("h1")
        assert shop.packs() == {"A-1": 10, "B-2": 5, "C-3": 1}
        page.goto(base + "/runs")
        assert "undone by 2" in page.inner_text("table")
        shot("06-runs")

        page.goto(base + "/cost")
        page.set_input_files("input[name=sales]", str(EXAMPLES / "sales.csv"))
        page.set_input_files("input[name=lots]", str(EXAMPLES / "lots.csv"))
        page.click("button.primary")
        page.wait_for_selector("text=Quarantine")
        quarantine = page.locator("table").first.inner_text()
        assert "XYZ789" in quarantine and "has no purchase lots" in quarantine and "sales.csv:4" in quarantine
        shot("07-cost")
        with page.expect_download() as download:
            page.click("text=quarantine.csv")
        assert "XYZ789" in Path(download.value.path()).read_text()

        page.goto(base + "/runs/1")
        shown = page.locator("time").first
        assert shown.get_attribute("title").endswith(" UTC") and "UTC" not in shown.inner_text()  # local time

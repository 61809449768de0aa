"""`trueup ledger …` in-process: exit codes, exact messages, JSON, and the ledger read back."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from trueup.cli.app import app
from trueup.cli.ledger import ledger_app
from trueup.ledger import Ledger

runner = CliRunner()


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no trueup.toml here
    monkeypatch.delenv("TRUEUP_LEDGER_URL", raising=False)
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    return f"sqlite:///{tmp_path}/books.db"


def run(*args: str):
    return runner.invoke(app, ["ledger", *args])


def test_post_query_and_verify_through_the_cli(url):
    assert run("receive", "pipe", "yard", "500", "--unit-cost", "0.40", "--lot", "ROLL-1", "-d", url).exit_code == 0
    split = run("split", "ROLL-1", "100", "50", "-d", url, "--format", "json")
    assert json.loads(split.stdout)["lots"] == ["L2-1", "L2-2"]
    sale = run("issue", "pipe", "yard", "400", "-d", url, "--format", "json", "--key", "order-1")
    assert sale.exit_code == 0
    posted = json.loads(sale.stdout)
    assert (posted["id"], posted["cost"], [m["from"] for m in posted["movements"]]) == (
        3, 160, [["yard", "ROLL-1"], ["yard", "L2-1"]]
    )  # fmt: skip
    balance = run("balance", "pipe", "yard", "-d", url, "--format", "json")
    assert json.loads(balance.stdout) == {
        "item": "pipe",
        "location": "yard",
        "lot": None,
        "as_of": None,
        "balance": 100,
    }
    assert run("balance", "pipe", "-d", url).stdout.strip() == "100"
    value = json.loads(run("valuation", "-d", url, "--format", "json").stdout)
    assert [(v["lot"], v["quantity"], v["value"]) for v in value] == [("L2-1", 50, 20), ("L2-2", 50, 20)]
    history = json.loads(run("history", "ROLL-1", "-d", url, "--format", "json").stdout)
    assert [e["kind"] for e in history] == ["receive", "split", "split", "issue"]
    verified = run("verify", "-d", url, "--format", "json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["rules"][0]["drifted"] == 0
    assert run("revert", "3", "-d", url).exit_code == 0
    with Ledger(url) as ledger:
        assert ledger.balance("pipe") == 500


def test_refusals_exit_1_and_bad_arguments_exit_2_with_one_line(url):
    run("receive", "pipe", "yard", "5", "--unit-cost", "1", "-d", url)
    refused = run("issue", "pipe", "yard", "6", "-d", url)
    assert refused.exit_code == 1
    assert refused.stderr == "error: not enough 'pipe' at 'yard': 6 wanted, 5 available (on hand 5)\n"
    run("revert", "1", "-d", url)
    again = run("revert", "1", "-d", url)
    assert (again.exit_code, again.stderr) == (1, "error: transaction 1 was already reverted by transaction 2\n")
    bad = run("issue", "pipe", "yard", "1.5x", "-d", url)
    assert (bad.exit_code, bad.stderr) == (2, "error: qty must be a number, not '1.5x'\n")
    when = run("balance", "pipe", "--as-of", "yesterday", "-d", url)
    assert when.exit_code == 2 and "--as-of: 'yesterday' is not an ISO 8601 time" in when.stderr
    missing = run("revert", "99", "-d", url)
    assert (missing.exit_code, missing.stderr) == (2, "error: no transaction 99\n")


def test_reservations_and_the_ledger_url_from_env_or_config(url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRUEUP_LEDGER_URL", url)
    run("receive", "cap", "shop", "10", "--unit-cost", "2")
    held = json.loads(run("reserve", "cap", "shop", "4", "--hold-for", "order-9", "--format", "json").stdout)
    assert json.loads(run("available", "cap", "shop", "--format", "json").stdout)["available"] == 6
    committed = json.loads(run("commit", str(held["id"]), "--format", "json").stdout)
    assert committed["cost"] == 8
    monkeypatch.delenv("TRUEUP_LEDGER_URL")
    (tmp_path / "trueup.toml").write_text(f'[ledger]\nurl = "{url}"\n')
    assert run("balance", "cap").stdout.strip() == "6"
    (tmp_path / "trueup.toml").unlink()
    nowhere = run("balance", "cap")
    assert nowhere.exit_code == 2 and "no ledger database" in nowhere.stderr
    with Ledger(url) as ledger:
        assert ledger.reservation(held["id"]).state == "committed" and ledger.balance("cap") == Decimal(6)


def test_every_command_has_help_with_an_example():
    for command in ledger_app.registered_commands:
        assert "Example: trueup ledger" in (command.callback.__doc__ or ""), command.name


def test_ledger_url_precedence(monkeypatch):
    from trueup.config import parse_config

    monkeypatch.delenv("TRUEUP_LEDGER_URL", raising=False)
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    both = parse_config({"database": {"url": "sqlite:///app.db"}, "ledger": {"url": "sqlite:///books.db"}})
    assert parse_config({"database": {"url": "sqlite:///app.db"}}).ledger_url() == "sqlite:///app.db"
    assert both.ledger_url() == "sqlite:///books.db"
    monkeypatch.setenv("TRUEUP_LEDGER_URL", "sqlite:///env.db")
    assert both.ledger_url() == "sqlite:///env.db"
    assert both.ledger_url("sqlite:///flag.db") == "sqlite:///flag.db"

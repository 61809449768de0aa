"""No password or token reaches any output: stdout, stderr, plans, backup manifests, written configs.

A password can sit in a URL's user part or in its query (`?password=`, `?sslpassword=`, ...); either way
every command family, in table and JSON, succeeding or failing, must show it as ***.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.databases import Database
from tests.test_check_cli import shop
from trueup.cli import app
from trueup.db import redact

runner = CliRunner()
SECRET = "S3cretPW"


def with_secret(url: str) -> str:
    """The test database's URL carrying SECRET in credential-bearing query parameters."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    # PostgreSQL's trust authentication ignores the password, so the commands really run there; MariaDB's
    # empty root password refuses it, so they fail to connect; SQLite ignores the parameter.
    secrets = {"postgresql": {"password": SECRET, "sslpassword": SECRET}, "mysql": {"password": SECRET}}
    secrets = secrets.get(backend, {"api_token": SECRET})
    return parsed.update_query_dict(secrets).render_as_string(hide_password=False)


def commands(tmp_path: Path, config: Path) -> list[list[str]]:
    c = ["-c", str(config)]
    backups = ["--backup-dir", str(tmp_path / "backups")]
    return [
        ["check", *c],
        ["check", *c, "-f", "json"],
        ["check", *c, "-f", "html", "-o", str(tmp_path / "drift.html")],
        ["plan", *c],
        ["plan", *c, "-f", "json", "--out", str(tmp_path / "plan.json")],
        ["apply", *c, "--yes", "-f", "json", *backups],
        ["apply", *c, "--plan", str(tmp_path / "plan.json"), "--yes", *backups],
        ["backup", *c, *backups],
        ["backup", *c, "--table", "nope", *backups],
        ["runs", *c, "-f", "json"],
        ["undo", "999", *c, "--yes"],
        ["history", *c],
        ["sync", "--rule", "batches", *c, "-f", "json"],
        ["ledger", "balance", "x", *c],
        ["ledger", "receive", "x", "shop", "1e99", "--unit-cost", "1", *c],
        ["cost", *c, "--sales-sql", "SELECT nope", "--lots-sql", "SELECT nope", "-o", str(tmp_path / "cost")],
        ["init", "--database", with_secret_of(config), "-c", str(tmp_path / "starter.toml")],
    ]


def with_secret_of(config: Path) -> str:
    return config.read_text().split('url = "', 1)[1].split('"', 1)[0]


def written(tmp_path: Path, config: Path) -> str:
    """Every text file the commands wrote (plans, reports, manifests, starter configs), not the config given."""
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != config and p.suffix not in (".db", ".sqlite")]
    return "".join(p.read_text(errors="replace") for p in files)


def test_no_command_shows_a_query_password(db: Database, tmp_path: Path) -> None:
    config = shop(db, tmp_path)
    config.write_text(config.read_text().replace(db.url, with_secret(db.url)))
    seen = []
    for args in commands(tmp_path, config):
        result = runner.invoke(app, args)
        assert "Traceback" not in result.output, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert SECRET not in result.output, (args, result.output)
        seen.append(result.exit_code)
    assert SECRET not in written(tmp_path, config)
    if db.kind == "postgresql":  # the password is ignored there, so the commands really ran
        assert seen[0] == 1 and "***" in (tmp_path / "plan.json").read_text()
        assert list((tmp_path / "backups").glob("*.manifest.json"))


def test_an_unencoded_at_sign_in_a_password_shows_none_of_it(tmp_path: Path) -> None:
    config = tmp_path / "trueup.toml"
    config.write_text(f'[database]\nurl = "postgresql://app:p@ss{SECRET}@127.0.0.1:1/shop"\n')
    for args in (["check", "-c", str(config)], ["ledger", "balance", "x", "-c", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert SECRET not in result.output and "ss" + SECRET[:3] not in result.output
        assert "%40" in result.stderr


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:pw@h/db?password=x&sslmode=require", "postgresql://u:***@h/db?password=***&sslmode=require"),
        (
            "postgresql://h/db?sslpassword=x&passfile=/p&sslkey=/k",
            "postgresql://h/db?passfile=***&sslkey=***&sslpassword=***",
        ),
        (
            "mysql+pymysql://u@h/db?passwd=x&ssl_key=/k&charset=utf8",
            "mysql+pymysql://u@h/db?charset=utf8&passwd=***&ssl_key=***",
        ),
        ("mysql://u@h/db?client_secret=x&access_token=y", "mysql://u@h/db?access_token=***&client_secret=***"),
        ("::not a url u:pw@h?password=x&y=1", "::not a url u:pw@h?password=***&y=1"),
    ],
)
def test_redact_hides_every_credential_bearing_parameter(url: str, shown: str) -> None:
    assert redact(url) == shown

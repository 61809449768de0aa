"""The Django integration in a real project (tests/django_project/): `manage.py migrate`, `manage.py trueup …`
as subprocesses (exit codes, output, database state after), and `keep_true` through `manage.py test`.

MariaDB is left out: Django's MySQL backend needs the mysqlclient C driver, which trueup does not ship.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.databases import SERVERS, Database, make_database, require_server
from trueup.contrib.django.database import url_from_settings
from trueup.errors import ConfigError

PROJECT = Path(__file__).parent / "django_project"
PASSWORD = "pw-never-shown"  # the servers trust 127.0.0.1, so any password connects; none may be printed
KINDS = ("sqlite", "postgresql")


def django_settings(db: Database) -> dict[str, Any]:
    """The `settings.DATABASES` entry for one of the test databases."""
    url = make_url(db.url)
    if db.kind == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.database}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.database,
        "USER": url.username,
        "PASSWORD": PASSWORD,
        "HOST": url.host,
        "PORT": str(url.port),
        "OPTIONS": dict(url.query),  # the test schema: options=-csearch_path=...
    }


class Project:
    """The test shop run as a user would: `python manage.py …` from another directory."""

    def __init__(self, databases: dict[str, Any], cwd: Path):
        self.env = os.environ | {"SHOP_DATABASES": json.dumps(databases)}
        self.cwd = cwd

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(PROJECT / "manage.py"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert PASSWORD not in result.stdout + result.stderr
        return result

    def trueup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.manage("trueup", *args)

    def json(self, *args: str) -> tuple[int, Any]:
        result = self.trueup(*args, "--format", "json")
        return result.returncode, json.loads(result.stdout, parse_float=Decimal)


@pytest.fixture(params=KINDS)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Project, Database]]:
    """A migrated shop: storefront 1 holds 0 of product 2 though 3 were delivered; storefront 2 holds 7 of 2."""
    db, drop = make_database(request.param, tmp_path)
    try:
        empty = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "empty.db")}
        project = Project({"default": django_settings(db), "other": empty}, tmp_path)
        migrated = project.manage("migrate", "--no-input")
        assert migrated.returncode == 0, migrated.stderr
        db.execute("INSERT INTO inventory_product (id, name) VALUES (1, 'lamp'), (2, 'desk')")
        db.execute(
            "INSERT INTO inventory_transferrequest (id, storefront_id, status) "
            "VALUES (1, 1, 'FULFILLED'), (2, 1, 'PENDING'), (3, 2, 'FULFILLED')"
        )
        db.execute(
            "INSERT INTO inventory_transferrequestlineitem (request_id, product_id, requested_quantity) "
            "VALUES (1, 1, 5), (1, 2, 3), (2, 1, 10), (3, 1, 2)"
        )
        db.execute(
            "INSERT INTO inventory_storefrontinventory (storefront_id, product_id, quantity) "
            "VALUES (1, 1, 5), (1, 2, 0), (2, 1, 7)"
        )
        yield project, db
    finally:
        drop()


def stock(db: Database) -> dict[tuple[int, int], int]:
    rows = db.rows("SELECT storefront_id, product_id, quantity FROM inventory_storefrontinventory")
    return {(s, p): q for s, p, q in rows}


def test_check_plan_apply_undo_through_manage_py(shop: tuple[Project, Database]) -> None:
    project, db = shop
    code, document = project.json("check")
    assert code == 1
    [rule] = document["rules"]
    assert [(d["key"], d["recorded"], d["expected"], d["delta"]) for d in rule["drift"]] == [
        ([2, 1], 7, 2, -5),
        ([1, 2], 0, 3, 3),
    ]

    planned = project.trueup("plan")
    assert planned.returncode == 1, planned.stderr
    assert "storefront" in planned.stdout and "-5" in planned.stdout

    code, applied = project.json("apply", "--no-backup")
    assert (code, applied["changed"], applied["status"]) == (0, 2, "verified")
    assert stock(db) == {(1, 1): 5, (1, 2): 3, (2, 1): 2}
    assert project.trueup("check").returncode == 0

    code, runs = project.json("runs")
    assert (code, [(r["id"], r["kind"], r["changed"]) for r in runs["runs"]]) == (
        0,
        [(applied["run_id"], "apply", 2)],
    )
    undone = project.trueup("undo", str(applied["run_id"]))
    assert undone.returncode == 0, undone.stderr
    assert stock(db) == {(1, 1): 5, (1, 2): 0, (2, 1): 7}


def test_sync_and_history_through_manage_py(shop: tuple[Project, Database]) -> None:
    project, db = shop
    code, document = project.json("sync", "--rule", "storefront", "--key", "1,2", "--apply")
    assert (code, document["checked"], document["drifted"], document["corrected"]) == (0, 1, 1, 1)
    assert stock(db) == {(1, 1): 5, (1, 2): 3, (2, 1): 7}  # only the key named

    watched = project.trueup("watch", "--once")  # storefront 2 still holds 7 where 2 were delivered
    assert watched.returncode == 1, watched.stderr
    assert stock(db)[(2, 1)] == 7

    history = project.trueup("history", "--rule", "storefront")
    assert history.returncode == 0, history.stderr
    assert "storefront" in history.stdout


def test_database_alias_chooses_another_database(shop: tuple[Project, Database]) -> None:
    project, _ = shop
    other = project.trueup("check", "--database-alias", "other")  # an empty SQLite file: no tables
    assert other.returncode == 2
    assert other.stderr.startswith("error: ") and "inventory_storefrontinventory" in other.stderr

    unknown = project.trueup("--database-alias", "nowhere", "check")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        2,
        "error: settings.DATABASES has no alias 'nowhere' (aliases: default, other)",
    )


def test_settings_trueup_config_names_the_config(shop: tuple[Project, Database], tmp_path: Path) -> None:
    project, _ = shop
    project.env["SHOP_TRUEUP_CONFIG"] = str(tmp_path / "elsewhere.toml")
    missing = project.trueup("check")
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        f"error: {tmp_path / 'elsewhere.toml'}: config file not found",
    )


def test_a_connection_failure_never_shows_the_password(tmp_path: Path) -> None:
    unreachable = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "nobody",
        "PASSWORD": PASSWORD,
        "HOST": "127.0.0.1",
        "PORT": "1",  # nothing listens there
    }
    result = Project({"default": unreachable}, tmp_path).trueup("check")  # asserts the password is not shown
    assert result.returncode == 2
    assert result.stderr == (
        "error: cannot connect to postgresql at 127.0.0.1:1 (database 'test'): connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
    )


@pytest.mark.parametrize("kind", KINDS)
def test_keep_true_in_djangos_test_runner(kind: str, tmp_path: Path) -> None:
    """inventory/tests.py: repaired after commit, nothing on rollback, both keys of a moved item, ..."""
    if kind == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "shop.db")}
        database["TEST"] = {"NAME": str(tmp_path / "test_shop.db")}  # a file: trueup connects on its own
    else:
        require_server(kind)
        server = make_url(SERVERS[kind])
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": server.database,
            "USER": server.username,
            "HOST": server.host,
            "PORT": str(server.port),
            "TEST": {"NAME": f"django_t_{uuid.uuid4().hex[:12]}"},  # a fresh database, dropped afterwards
        }
    result = Project({"default": database}, tmp_path).manage("test", "inventory", "--no-input")
    assert result.returncode == 0, result.stderr
    assert "Ran 8 tests" in result.stderr and "\nOK\n" in result.stderr


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        (
            {"ENGINE": "django.db.backends.sqlite3", "NAME": Path("/srv/shop/db.sqlite3")},
            "sqlite:////srv/shop/db.sqlite3",
        ),
        (
            {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "shop",
                "USER": "app",
                "PASSWORD": "p@ss",
                "HOST": "db.internal",
                "PORT": "5433",
                "OPTIONS": {"sslmode": "require", "isolation_level": 1, "pool": {"min_size": 2}},
            },
            "postgresql+psycopg://app:p%40ss@db.internal:5433/shop?sslmode=require",
        ),
        (
            {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "HOST": "/var/run/postgresql", "PORT": ""},
            "postgresql+psycopg:///shop?host=%2Fvar%2Frun%2Fpostgresql",
        ),
        (
            {
                "ENGINE": "django.db.backends.mysql",
                "NAME": "shop",
                "USER": "root",
                "HOST": "127.0.0.1",
                "PORT": 3306,
                "OPTIONS": {"charset": "utf8mb4", "ssl": {"ca": "/etc/ca.pem"}},
            },
            "mysql+pymysql://root@127.0.0.1:3306/shop?charset=utf8mb4&ssl_ca=%2Fetc%2Fca.pem",
        ),
    ],
)
def test_url_from_settings(entry: dict[str, Any], url: str) -> None:
    assert url_from_settings(entry).render_as_string(hide_password=False) == url


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"ENGINE": "django.db.backends.oracle", "NAME": "shop"},
            "settings.DATABASES['default']['ENGINE']: django.db.backends.oracle is not supported by trueup "
            "(use django.db.backends.mysql, django.db.backends.postgresql, django.db.backends.sqlite3)",
        ),
        (
            {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "settings.DATABASES['default']['NAME']: trueup needs a database file, not an in-memory database",
        ),
        (
            {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "OPTIONS": {"cursor_factory": object}},
            "settings.DATABASES['default']['OPTIONS']['cursor_factory']: a type cannot be passed in a database "
            "URL; give trueup the URL yourself with --database",
        ),
    ],
)
def test_url_from_settings_refuses_what_it_cannot_connect_to(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        url_from_settings(entry)
    assert str(refused.value) == message


def test_import_trueup_does_not_import_django() -> None:
    code = "import sys, trueup, trueup.cli; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

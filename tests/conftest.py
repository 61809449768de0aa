"""Shared fixtures: `db` runs a test once per database kind (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import KINDS, Database, make_database


def _fresh(kind: str, tmp_path) -> Iterator[Database]:
    database, drop = make_database(kind, tmp_path)
    try:
        yield database
    finally:
        drop()


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    yield from _fresh(request.param, tmp_path)


@pytest.fixture(params=("postgresql", "mariadb"))
def server_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    yield from _fresh(request.param, tmp_path)


@pytest.fixture
def sqlite_db(tmp_path) -> Iterator[Database]:
    yield from _fresh("sqlite", tmp_path)


@pytest.fixture
def pg(tmp_path) -> Iterator[Database]:
    """A PostgreSQL schema of its own, for what exists only there (guard alarm and enforce)."""
    yield from _fresh("postgresql", tmp_path)

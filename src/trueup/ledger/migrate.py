"""Creating and upgrading the ledger's schema with Alembic, run from code (no alembic.ini).

The migration scripts ship inside the package (`trueup/ledger/migrations`).
`upgrade(engine)` brings a database to the newest revision under a database
lock, so two processes opening a new ledger at once do not both create it.
The revision is kept in its own table, `ledger_schema_version`, so a ledger
can live in a database whose application uses Alembic too.

For developers adding a revision:

    alembic -x ... revision -m "..."   # or copy versions/0001_ledger.py's shape by hand
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from trueup.db import dialect_for

log = logging.getLogger(__name__)

VERSION_TABLE = "ledger_schema_version"
SCRIPTS = Path(__file__).with_name("migrations")
_LOCK = "trueup_ledger_migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current(engine: Engine) -> str | None:
    """The revision the database is at (None when the ledger has not been created)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine) -> None:
    """Create the ledger's tables, or upgrade them to the newest revision; a no-op when up to date."""
    target = head()
    if current(engine) == target:
        return
    config = alembic_config()
    with engine.begin() as connection, dialect_for(connection).exclusive(connection, _LOCK):
        config.attributes["connection"] = connection
        log.info("upgrading the ledger schema to %s", target)
        command.upgrade(config, "head")

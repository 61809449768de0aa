"""Alembic environment for the ledger: always run through `trueup.ledger.migrate`, on its connection."""

from alembic import context

from trueup.ledger.migrate import VERSION_TABLE
from trueup.ledger.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()

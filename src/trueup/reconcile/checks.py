"""Custom checks: the user's own SQL returning the rows that break an invariant (as in dbt).

No rows means the invariant holds. The query is streamed: the first few rows
are kept as a sample and the rest only counted, so a check that fails on a
million rows costs no memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from trueup.config import Check
from trueup.db import dialect_for, driver_message, user_sql
from trueup.errors import ConfigError
from trueup.reconcile.drift import SAMPLE_SIZE


class CheckResult(NamedTuple):
    name: str
    severity: str
    failing: int
    sample: tuple[dict[str, Any], ...]

    @property
    def fails_run(self) -> bool:
        """A failing error-severity check makes `trueup check` exit 1."""
        return self.failing > 0 and self.severity == "error"


def run_check(connection: Connection, check: Check, label: str = "config") -> CheckResult:
    options = dialect_for(connection).stream_options()  # for this statement only, not the connection's
    try:
        result = connection.execute(user_sql(check.sql), execution_options=options)
        columns = list(result.keys())
        failing, sample = 0, []
        for row in result:
            failing += 1
            if len(sample) < SAMPLE_SIZE:
                sample.append(dict(zip(columns, row, strict=True)))
    except DBAPIError as error:
        connection.rollback()
        raise ConfigError(
            f"{label}: check {check.name!r}: the database rejected its sql: {driver_message(error)}"
        ) from None
    return CheckResult(check.name, check.severity, failing, tuple(sample))

"""The one user-facing exception tree.

Every error a user can cause or meet (bad config, unreachable database, a
refused plan) derives from `TrueupError`. The CLI catches it in one place and
prints `str(error)` as one line on stderr with `error.exit_code`: 2 when the
command could not run, 1 when it ran and refused something.
"""


class TrueupError(Exception):
    """Base class: the message is complete and safe to show (no passwords)."""

    exit_code = 2


class ConfigError(TrueupError):
    """The config file (or an argument standing in for it) is unusable."""


class UsageError(TrueupError):
    """An argument or API call is invalid."""


class NotFoundError(UsageError):
    """The thing named (a run, a transaction, a lot, a token) does not exist."""


class InputError(TrueupError):
    """An input file or query cannot be read as the data it should hold (missing, unreadable, columns absent)."""


class DatabaseError(TrueupError):
    """The database could not be reached, or refused a statement we built."""


class UnreachableError(DatabaseError):
    """The database could not be reached at all (as opposed to refusing a statement)."""


class RefusedError(TrueupError):
    """The command ran but refused to act: a guard rail, a conflict, a declined confirmation."""

    exit_code = 1


class ConflictError(RefusedError):
    """Refused because the data moved underneath: rows changed since a plan or a run."""

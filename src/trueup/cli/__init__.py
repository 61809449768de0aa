"""The `trueup` command line: a thin layer over the library (parse, call, render).

Importing a command module registers its commands; the order below is the
order `trueup --help` lists them in.
"""

# isort: off
from trueup.cli.app import app
from trueup.cli import setup  # noqa: F401  demo, init
from trueup.cli import check  # noqa: F401  check
from trueup.cli import repair  # noqa: F401  plan, apply, undo
from trueup.cli import runs  # noqa: F401  runs, runs show
from trueup.cli import sync  # noqa: F401  watch, sync, history
from trueup.cli import backup  # noqa: F401  backup, backup list, backup verify, restore
from trueup.cli import cost  # noqa: F401  cost
from trueup.cli import ledger  # noqa: F401  ledger …
from trueup.cli import serve  # noqa: F401  serve, token …
from trueup.cli import guard  # noqa: F401  guard plan, install, remove, status
# isort: on


def main() -> None:
    app()

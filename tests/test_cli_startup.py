"""Start-up: `trueup --help` imports no command module, and no command's help loads a library it does not need.

The timings are in benchmarks/bench_startup.py; these tests guard what is loaded, and that
the listing `trueup --help` prints without importing the commands says what they say.
"""

import subprocess
import sys

import typer.main

from trueup.cli.app import COMMANDS, app, command_paths, load
from trueup.cli.cost import METHODS as CLI_METHODS
from trueup.cli.ledger import ISSUE_REASONS as CLI_REASONS
from trueup.cli.setup import PRESET_NAMES
from trueup.cost import METHODS
from trueup.ledger import ISSUE_REASONS
from trueup.presets import PRESETS


def loaded_after(*argvs: list[str]) -> list[str]:
    """The top-level packages of interest loaded by running `trueup ARGV` for each argv, in one fresh process."""
    probe = (
        "import sys\nfrom trueup.cli import app\n"
        f"for argv in {argvs!r}:\n"
        "    try:\n        app(argv)\n    except SystemExit as stop:\n        assert stop.code == 0, argv\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & "
        "{'sqlalchemy', 'pydantic', 'polars', 'numpy', 'fastapi', 'rich'}))\n"
        "print(sorted(name for name in sys.modules if name.startswith('trueup.cli.')))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ran.stdout.splitlines()[-2:]  # after the help texts


def test_the_cost_command_offers_the_library_methods():
    assert CLI_METHODS == METHODS


def test_init_offers_every_preset_and_issue_names_every_reason():
    assert tuple(PRESETS) == PRESET_NAMES
    assert tuple(ISSUE_REASONS) == CLI_REASONS


def test_loading_the_command_line_leaves_polars_unloaded():
    probe = "import sys, trueup.cli; print(sorted({'polars', 'numpy'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_trueup_help_imports_no_command_and_no_library():
    packages, commands = loaded_after(["--help"])
    assert packages == "[]"
    assert commands == "['trueup.cli.app', 'trueup.cli.common']"


def test_a_commands_help_imports_its_module_alone():
    packages, commands = loaded_after(["ledger", "receive", "--help"])
    assert packages == "[]"
    assert commands == "['trueup.cli.app', 'trueup.cli.common', 'trueup.cli.ledger', 'trueup.cli.options']"


def test_no_commands_help_loads_a_database_model_or_costing_library():
    under_options = {("runs", "show"), ("backup", "list"), ("backup", "verify")}
    packages, _ = loaded_after(*([*path, "--help"] for path in command_paths() if path not in under_options))
    assert packages == "[]"
    # `runs` and `backup` take options of their own, parsed before a sub-command's --help: Typer coerces them
    # with pydantic
    packages, _ = loaded_after(*([*path, "--help"] for path in sorted(under_options)))
    assert packages == "['pydantic']"


def test_the_listing_says_what_each_command_says():
    for name, listed in COMMANDS.items():
        assert load(name).get_short_help_str(limit=1000) == listed.help, name
    registered = [typer.main.get_command_name(c.name or c.callback.__name__) for c in app.registered_commands]
    assert sorted(registered + [g.name for g in app.registered_groups]) == sorted(COMMANDS)

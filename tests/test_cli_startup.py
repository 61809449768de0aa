"""Start-up: `trueup --help` and the commands that do not cost load no costing library (polars, numpy)."""

import subprocess
import sys

from trueup.cli.cost import METHODS as CLI_METHODS
from trueup.cost import METHODS


def test_the_cost_command_offers_the_library_methods():
    assert CLI_METHODS == METHODS


def test_loading_the_command_line_leaves_polars_unloaded():
    probe = "import sys, trueup.cli; print(sorted({'polars', 'numpy'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"

"""The examples/ folder stays identical to the shapes the package generates and the demo uses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql

from trueup.examples import SHAPES
from trueup.examples.__main__ import schema_sql

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_example_folder_matches_the_package(shape: str) -> None:
    folder = EXAMPLES / shape
    config = tomllib.loads((folder / "trueup.toml").read_text())
    assert config["rules"] == tomllib.loads(SHAPES[shape].CONFIG)["rules"]
    assert (folder / "schema.sql").read_text() == schema_sql(shape, postgresql.dialect())

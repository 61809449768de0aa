"""The demo shop: one SQLite database holding all four incident shapes, with drift, and its config."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from trueup.examples import SHAPES

DATABASE_FILE = "shop.db"
CONFIG_FILE = "trueup.toml"


def build_demo(directory: Path, *, items: int = 200, seed: int = 1) -> Path:
    """Create `directory/shop.db` (replacing it) and `directory/trueup.toml`; return the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / DATABASE_FILE
    database.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            for shape in SHAPES.values():
                shape.metadata.create_all(connection)
                shape.generate(connection, items=items, seed=seed)
    finally:
        engine.dispose()
    config = directory / CONFIG_FILE
    config.write_text(demo_config(database), encoding="utf-8")
    return config


def demo_config(database: Path) -> str:
    header = (
        "# trueup demo: a small shop with drift of the four kinds seen in real incidents.\n"
        "# Written by `trueup demo`; see the README for what each rule means.\n\n"
        f'[database]\nurl = "sqlite:///{database.resolve()}"\n'
        '\n[report]\ncurrency = "USD"               # how reports show money (optional)\n'
    )
    return header + "".join(f"\n{shape.CONFIG}" for shape in SHAPES.values())

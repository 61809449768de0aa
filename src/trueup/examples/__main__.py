"""`python -m trueup.examples SHAPE URL [--items N]`: create an example's tables and fill them with drift.

`--schema` prints the example's DDL for the URL's database instead.
"""

from __future__ import annotations

import argparse

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from trueup.db import open_engine
from trueup.examples import SHAPES


def schema_sql(shape: str, dialect: sa.Dialect) -> str:
    statements = []
    for table in SHAPES[shape].metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        statements += [str(CreateIndex(index).compile(dialect=dialect)).strip() + ";" for index in table.indexes]
    text = "\n\n".join(statements) + "\n"
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m trueup.examples", description=__doc__)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("url", help="database URL, e.g. sqlite:///example.db")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schema", action="store_true", help="print the DDL instead of creating anything")
    args = parser.parse_args()
    engine = open_engine(args.url)
    if args.schema:
        print(schema_sql(args.shape, engine.dialect), end="")
        return
    with engine.begin() as connection:
        SHAPES[args.shape].metadata.create_all(connection)
        SHAPES[args.shape].generate(connection, items=args.items, seed=args.seed)
    print(f"{args.shape}: {args.items} items written to {args.url}")


if __name__ == "__main__":
    main()

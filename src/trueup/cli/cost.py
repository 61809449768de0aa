"""`trueup cost`."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trueup.cli import common
from trueup.cli.app import app
from trueup.cli.options import ConfigOption, DatabaseOption, QuietOption
from trueup.errors import UsageError

if TYPE_CHECKING:
    from trueup.cost.compute import Input
    from trueup.cost.result import CostResult
    from trueup.cost.store import StoreResult

# The costing library (polars, numpy) loads when `trueup cost` runs, not for every command's start-up;
# these names mirror trueup.cost.engines.METHODS (tests/test_cli_startup.py holds them equal).
METHODS = ("fifo", "lifo", "average")

Method = StrEnum("Method", {m: m for m in METHODS})  # type: ignore[misc]


class Engine(StrEnum):
    local = "local"
    spark = "spark"


class SummaryFormat(StrEnum):
    table = "table"
    json = "json"


@app.command()
@common.handles_errors
def cost(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for cogs.csv, lots_remaining.csv, ...")],
    sales: Annotated[
        str | None, typer.Option(help="Sales export (.csv, .xlsx or .parquet); with --engine spark also a table.")
    ] = None,
    lots: Annotated[
        str | None, typer.Option(help="Purchase-lot export (.csv, .xlsx or .parquet); with --engine spark a table.")
    ] = None,
    sales_sql: Annotated[str | None, typer.Option(help="Query for the sales, run on the configured database.")] = None,
    lots_sql: Annotated[str | None, typer.Option(help="Query for the lots, run on the configured database.")] = None,
    method: Annotated[Method, typer.Option(help="Costing method.")] = Method.fifo,  # type: ignore[attr-defined]
    map_: Annotated[
        list[str] | None, typer.Option("--map", help='Name a column: sales.sku="Item Code" (repeatable).')
    ] = None,
    policy: Annotated[
        list[str] | None, typer.Option(help="Override a severity: date_mismatch=medium (repeatable).")
    ] = None,
    date_format: Annotated[str | None, typer.Option(help="Layout of day/month dates, e.g. %d/%m/%Y.")] = None,
    sku_case: Annotated[str, typer.Option(help="SKU case folding: upper, lower or keep.")] = "upper",
    report: Annotated[bool, typer.Option("--report", help="Also write a self-contained report.html.")] = False,
    fmt: Annotated[SummaryFormat, typer.Option("--format", "-f", help="Summary format.")] = SummaryFormat.table,
    write: Annotated[
        bool, typer.Option("--write", help="Also store the results in the database (a dry run unless --apply).")
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="With --write: commit, as a run `trueup undo` reverts.")
    ] = False,
    memory: Annotated[
        str | None,
        typer.Option(help="Memory to cost in, e.g. 2G (default: a quarter of the machine); past it, cost by SKU."),
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where larger inputs are split by SKU (default: a folder under --out).")
    ] = None,
    engine: Annotated[Engine, typer.Option(help="Where to cost: here, or on Spark (pip install 'trueup[spark]').")] = (
        Engine.local
    ),
    spark_master: Annotated[str, typer.Option(metavar="URL", help="With --engine spark: the cluster.")] = "local[2]",
    cogs_table: Annotated[
        str | None, typer.Option(metavar="NAME", help="Table for the cost of each sale line (default trueup_cogs).")
    ] = None,
    lots_table: Annotated[
        str | None, typer.Option(metavar="NAME", help="Table for the lots remaining (default trueup_lots_remaining).")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress", help="Show a bar of the partitions on stderr, even if not a terminal.")
    ] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    quiet: QuietOption = False,
) -> None:
    """Cost of goods sold from sales and purchase-lot exports; bad SKUs are quarantined (exit 1), never the batch.

    Example: trueup cost --sales sales.csv --lots lots.xlsx --out cogs/ --policy cost_anomaly=high --report
    """
    if apply and not write:
        raise UsageError("--apply commits what --write stores; give both")
    from trueup.cost import write_outputs
    from trueup.cost.compute import Run, as_table, cost_tables
    from trueup.cost.partition import cost_to_directory, fits, machine_memory, parse_memory
    from trueup.cost.write import result_dict
    from trueup.report.cost import print_store, print_summary, store_dict
    from trueup.report.format import to_json

    budget = machine_memory() if memory is None else parse_memory(memory)
    run = Run.of(method=method.value, policy=policy, columns=map_, date_format=date_format, sku_case=sku_case)
    shown = progress or (not quiet and sys.stderr.isatty())
    with ExitStack() as stack, common.Activity(shown, terminal=progress or None) as activity:
        activity.phase("costing…")
        sold, bought = _inputs(stack, sales, lots, sales_sql, lots_sql, config, database)
        if engine is Engine.spark:
            if report or write:
                raise UsageError("--engine spark writes the files in --out; --report and --write need --engine local")
            from trueup.cost.spark import cost_on_spark  # loads PySpark only when asked for

            result = cost_on_spark(sold, bought, out, master=spark_master, memory=budget, work_dir=work_dir, run=run)
        elif report or write or fits({"sales": sold, "lots": bought}, budget):
            result = cost_tables(as_table(sold, "sales"), as_table(bought, "lots"), run)
            write_outputs(result, out, report=report)
        else:
            result = cost_to_directory(
                sold, bought, out, memory=budget, work_dir=work_dir, run=run, progress=activity.counted
            )
    stored = _store(result, config, database, apply, cogs_table, lots_table) if write else None
    if fmt is SummaryFormat.json:
        document = result_dict(result, out) | ({"database": store_dict(stored)} if stored else {})
        common.stdout().file.write(to_json(document) + "\n")
    else:
        print_summary(result, common.stdout())
        if stored:
            print_store(stored, common.stdout())
    raise typer.Exit(result.exit_code)


def _store(
    result: CostResult, config: Path | None, database: str | None, apply: bool, cogs: str | None, lots: str | None
) -> StoreResult:
    from trueup.cost.store import COGS_TABLE, LOTS_TABLE, store

    settings = common.load_config_for(config, database)
    with common.session(settings, database) as connection:
        return store(connection, result, apply=apply, cogs=cogs or COGS_TABLE, lots=lots or LOTS_TABLE)


def _inputs(
    stack: ExitStack,
    sales: str | None,
    lots: str | None,
    sales_sql: str | None,
    lots_sql: str | None,
    config: Path | None,
    database: str | None,
) -> tuple[Input, Input]:
    """The two inputs: files as given, queries run on one connection to the configured database."""
    for role, path, sql in (("sales", sales, sales_sql), ("lots", lots, lots_sql)):
        if (path is None) == (sql is None):
            raise UsageError(f"give exactly one of --{role} FILE or --{role}-sql QUERY")
    if sales_sql is None and lots_sql is None:
        return sales, lots  # type: ignore[return-value]
    from trueup.cost.read import read_query

    settings = common.load_config_for(config, database)
    connection = stack.enter_context(common.session(settings, database))
    return (
        read_query("sales query", connection, sales_sql) if sales_sql else sales,  # type: ignore[return-value]
        read_query("lots query", connection, lots_sql) if lots_sql else lots,
    )

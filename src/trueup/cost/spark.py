"""Costing on Spark: the per-SKU engine run inside the workers, its files byte for byte the local engine's.

`cost_on_spark` follows the partitioned engine (`trueup.cost.partition`) with
Spark doing the heavy steps:

1. each input becomes a Spark DataFrame of text with its row numbers: a local
   export is read by trueup's own reader (so its cells and line numbers are
   the local engine's) and spilled as Parquet under the work directory; any
   other name is the cluster's: a Parquet or CSV path (`s3a://…`, `hdfs://…`,
   `/dbfs/…`) or a table, numbered from 1 in the order Spark reads it;
2. the workers compute each row's SKU (`trueup.cost.normalise.sku_expr`, over
   Arrow batches), the driver groups consecutive SKUs (in SKU order) into
   groups of at most `memory // BYTES_PER_LINE` lines, one SKU never split;
3. the groups are cogrouped (sales with lots, by group) and each is given to
   `trueup.cost.normalise.context` in a worker; the driver merges the contexts
   (scales, main currency) as the partitioned engine does;
4. each group is costed in a worker by `trueup.cost.compute.cost_tables` with
   that context; a worker returns its group's cogs and lots CSV, its rows not
   costed and its findings and summary. A critical finding in any group costs
   every group again as stopped.
5. the driver streams the groups' CSV in group order into `--out` and writes
   the rest (quarantine, summary) from the merged result.

Example: 3 SKUs A, B, C of 4, 2 and 5 lines at 6 lines a group make the groups
{A, B} and {C}; rows without a SKU are group -1. Worker 1 costs {A, B}, worker
2 costs {C}; cogs.csv is group -1's lines, then {A, B}'s, then {C}'s — what the
in-memory engine writes, SKU by SKU.

PySpark is imported here only, and this module only when `--engine spark` asks.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pyarrow as pa

from trueup.cost.compute import Input, Run, column_maps, cost_tables
from trueup.cost.normalise import Context, context, sku_expr
from trueup.cost.partition import (
    BYTES_PER_LINE,
    KEY,
    NO_SKU,
    PART,
    block_rows,
    merge_results,
    plan_parts,
    rowless,
    spill_input,
    working,
)
from trueup.cost.read import LINE, PROBLEM, Table
from trueup.cost.result import CostResult
from trueup.cost.write import Streams, csv_parts, write_outputs
from trueup.errors import InputError, UsageError

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
INSTALL = "--engine spark needs PySpark: pip install 'trueup[spark]'"
_CSV = (".csv", ".txt", ".tsv")
_ROLES = ("sales", "lots")
_LOG4J = Path(__file__).with_name("spark-log4j2.properties")  # the driver's JVM logs errors only


class _Head(NamedTuple):
    """A Table without rows, as plain data for the workers: name, columns and types, numbering, duplicates."""

    name: str
    schema: dict[str, Any]
    numbering: str
    duplicates: tuple[str, ...]

    def table(self, rows: pa.Table | None) -> Table:
        frame = pl.DataFrame(schema=self.schema)
        if rows is not None and rows.num_rows:
            frame = pl.from_arrow(rows).select(list(self.schema)).cast(self.schema).sort(LINE)  # type: ignore[union-attr]
        return Table(self.name, frame, self.numbering, self.duplicates)


def cost_on_spark(
    sales: Input,
    lots: Input,
    out: str | Path,
    *,
    master: str = DEFAULT_MASTER,
    memory: int,
    work_dir: str | Path | None = None,
    run: Run | None = None,
) -> CostResult:
    """Cost on the Spark cluster at `master` and write the files `write_outputs` writes into `out`.

    Like `trueup.cost.partition.cost_to_directory`, the result has the summary and findings, and its rows are
    in the files.
    """
    run = run or Run.of()
    spark = session(master)
    with working(Path(out), work_dir) as work:
        frames = {
            role: _frame(spark, source, role, work, memory) for role, source in zip(_ROLES, (sales, lots), strict=True)
        }
        heads = {role: head for role, (head, _) in frames.items()}
        maps = column_maps({role: head.table(None) for role, head in heads.items()}, run.overrides)
        keyed = {role: _keyed(frame, maps[role].columns["sku"], run.sku_case) for role, (_, frame) in frames.items()}
        parted = _parted(spark, keyed, memory)
        try:
            return _cost(spark, parted, heads, Path(out), run)
        finally:
            for frame in parted.values():
                frame.unpersist()


def session(master: str) -> Any:
    """The Spark session (an existing one is reused), or a UsageError saying how to get PySpark."""
    try:
        from pyspark.errors import PySparkException
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(INSTALL) from None
    from py4j.protocol import Py4JError

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers in local mode run this interpreter
    warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")  # pandas 3: unused here
    builder = SparkSession.builder.master(master).appName("trueup cost").config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={_LOG4J.as_uri()}")
    try:
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        return spark
    except (PySparkException, Py4JError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--spark-master {master}: cannot start Spark: {first}") from None


def _frame(spark: Any, source: Input, role: str, work: Path, memory: int) -> tuple[_Head, Any]:
    """The input as a Spark DataFrame of text with LINE and PROBLEM, and its head."""
    if not isinstance(source, (str, Path)) or Path(source).is_file():
        blocks = work / f"{role}-spark"
        table = spill_input(source, role, blocks, block_rows(memory))
        head = _Head(table.name, dict(table.frame.schema), table.numbering, table.duplicates)
        return head, spark.read.parquet(blocks.resolve().as_uri())
    return _cluster(spark, str(source))


def _cluster(spark: Any, name: str) -> tuple[_Head, Any]:
    """A path or table the cluster reads, its cells as text, numbered in the order Spark reads them."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    try:
        if name.lower().endswith(_CSV):
            frame = spark.read.option("header", True).csv(name)
        elif "/" in name or ":" in name:
            frame = spark.read.parquet(name)
        else:
            frame = spark.table(name)
    except PySparkException as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{name}: Spark cannot read it: {first}") from None
    text = frame.select([F.col(f"`{c}`").cast("string").alias(c.strip()) for c in frame.columns])
    schema = T.StructType([*text.schema.fields, T.StructField(LINE, T.LongType())])
    numbered = text.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1] + 1)).toDF(schema)
    numbered = numbered.withColumn(PROBLEM, F.lit(None).cast("string"))
    columns = {c.strip(): pl.String for c in frame.columns} | {LINE: pl.Int64, PROBLEM: pl.String}
    return _Head(name.rstrip("/").rsplit("/", 1)[-1], columns, "row", ()), numbered


def _keyed(frame: Any, sku_column: str, sku_case: str) -> Any:
    """The rows with their SKU (as the local engine reads it) in `KEY`, computed in the workers."""
    from pyspark.sql import types as T

    def add_key(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = pl.from_arrow(batch)
            key = rows.select(sku_expr(pl.col(sku_column).cast(pl.String), sku_case).alias(KEY)).to_arrow()
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, key.column(0).combine_chunks()], [*batch.schema.names, KEY]
            )

    schema = T.StructType([*frame.schema.fields, T.StructField(KEY, T.StringType())])
    return frame.mapInArrow(add_key, schema)


def _parted(spark: Any, keyed: Mapping[str, Any], memory: int) -> dict[str, Any]:
    """Each input's rows with their group (`PART`, -1 without a SKU), kept by Spark for the two passes."""
    from pyspark.sql import functions as F

    counts = None
    for frame in keyed.values():
        count = frame.groupBy(KEY).agg(F.count(F.lit(1)).alias("rows"))
        counts = count if counts is None else counts.unionByName(count)
    per_sku = pl.from_arrow(counts.groupBy(KEY).agg(F.sum("rows").alias("rows")).toArrow())  # type: ignore[union-attr]
    total = int(per_sku["rows"].sum() or 0)
    workers = spark.sparkContext.defaultParallelism
    budget = max(1, min(memory // BYTES_PER_LINE, math.ceil(total / (4 * workers))))
    plan = plan_parts(per_sku.with_columns(pl.col("rows").cast(pl.Int64)), budget)  # type: ignore[union-attr]
    groups = plan[PART].n_unique() + 1
    spark.conf.set("spark.sql.shuffle.partitions", str(max(1, min(groups, 4 * workers))))
    log.info("costing %d SKUs in %d groups of at most %d lines", plan.height, groups, budget)
    plans = F.broadcast(spark.createDataFrame(plan.to_arrow()))
    return {
        role: frame.join(plans, on=KEY, how="left").fillna({PART: NO_SKU}).drop(KEY).persist()
        for role, frame in keyed.items()
    }


def _cost(spark: Any, parted: Mapping[str, Any], heads: Mapping[str, _Head], out: Path, run: Run) -> CostResult:
    from pyspark.sql import types as T

    grouped = parted["sales"].groupBy(PART).cogroup(parted["lots"].groupBy(PART))
    contexts = grouped.applyInArrow(
        _context_of(heads, run),
        T.StructType([T.StructField("part", T.LongType()), T.StructField("ctx", T.BinaryType())]),
    ).collect()
    if not contexts:  # both inputs are empty: nothing to group
        result = cost_tables(heads["sales"].table(None), heads["lots"].table(None), run)
        write_outputs(result, out)
        return result
    whole = _merged(pickle.loads(row["ctx"]) for row in contexts)
    costed = _costed(grouped, heads, run, whole, stop=False)
    try:
        meta = costed.select("part", "stopped", "held", "result").collect()
        if any(row["stopped"] for row in meta):
            costed.unpersist()
            costed = _costed(grouped, heads, run, whole, stop=True)
            meta = costed.select("part", "stopped", "held", "result").collect()
        return _write(costed, sorted(meta, key=lambda row: row["part"]), out)
    finally:
        costed.unpersist()


def _merged(contexts: Iterator[Context]) -> Context:
    whole: Context | None = None
    for found in contexts:
        whole = found if whole is None else whole.merge(found)
    assert whole is not None
    return whole


def _context_of(heads: Mapping[str, _Head], run: Run) -> Any:
    def found(key: tuple, sales: pa.Table, lots: pa.Table) -> pa.Table:
        tables = {"sales": heads["sales"].table(sales), "lots": heads["lots"].table(lots)}
        maps = column_maps(tables, run.overrides)
        ctx = context(tables["sales"], tables["lots"], maps, sku_case=run.sku_case, date_format=run.date_format)
        return pa.table({"part": [key[0].as_py()], "ctx": [pickle.dumps(ctx)]})

    return found


_COSTED = ("part", "stopped", "cogs", "lots", "held", "result")


def _costed(grouped: Any, heads: Mapping[str, _Head], run: Run, whole: Context, *, stop: bool) -> Any:
    """Every group costed in the workers: its CSV (with header lines), rows not costed and rowless result."""
    from pyspark.sql import types as T

    def costed(key: tuple, sales: pa.Table, lots: pa.Table) -> pa.Table:
        result = cost_tables(heads["sales"].table(sales), heads["lots"].table(lots), run, context=whole, stop=stop)
        cogs, remaining = csv_parts(result)
        held = io.BytesIO()
        result.held.with_columns(
            (pl.col("input") == "lots").alias("__lots"),
            pl.col("source").str.extract(r"(\d+)$").cast(pl.Int64).alias("__number"),
        ).write_ipc(held)
        values = [key[0].as_py(), result.summary.stopped, cogs, remaining, held.getvalue()]
        return pa.table(dict(zip(_COSTED, [[v] for v in [*values, pickle.dumps(rowless(result))]], strict=True)))

    types = (T.LongType(), T.BooleanType(), *[T.BinaryType()] * 4)
    schema = T.StructType([T.StructField(n, t) for n, t in zip(_COSTED, types, strict=True)])
    return grouped.applyInArrow(costed, schema).persist()


def _write(costed: Any, meta: list[Any], out: Path) -> CostResult:
    """The groups' files streamed into `out` in group order, then the merged findings and summary."""
    merged = merge_results([pickle.loads(row["result"]) for row in meta])
    held = pl.concat([pl.read_ipc(io.BytesIO(row["held"])) for row in meta], how="vertical_relaxed")
    with Streams(out) as streams:
        for row in costed.select("part", "cogs", "lots").orderBy("part").toLocalIterator():
            streams.append_csv(row["cogs"], row["lots"])
        streams.finish(merged, held.sort("__lots", "__number").drop("__lots", "__number"))
    log.info("costed %d groups on Spark", len(meta))
    return merged

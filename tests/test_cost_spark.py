"""Cost on Spark (local mode): every output file byte for byte the local engine's, on the messy test exports.

One small Spark session serves the whole module (`trueup.cost.spark.session` reuses it); each test runs the
CLI once with `--engine spark` and once with the local engine and compares the files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import trueup.cost
from tests.test_cost_partition import LOTS, SALES, messy_books, same_outputs, write_csv
from trueup.cli import app
from trueup.cost.read import read_frame
from trueup.cost.spark import DEFAULT_MASTER
from trueup.cost.spark import session as spark_session
from trueup.cost.write import FILES

try:
    import pyspark  # noqa: F401
except ImportError:  # the spark extra is in dev: CI must have it
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("PySpark is not installed: pip install -e '.[dev]'", allow_module_level=True)
EXAMPLES = Path(__file__).parent.parent / "examples" / "cost"
runner = CliRunner()
pytestmark = pytest.mark.xdist_group("spark")  # one JVM for the module, in one test worker


@pytest.fixture(scope="module")
def spark():
    """The session every `--engine spark` run in this module reuses (its shuffles sized to the groups)."""
    session = spark_session(DEFAULT_MASTER)
    yield session
    session.stop()
    from pyspark import SparkContext

    SparkContext._gateway.shutdown()  # stop() leaves the JVM (about 1 GB) running for the rest of the suite
    SparkContext._gateway = SparkContext._jvm = None


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["cost", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def both_engines(tmp_path: Path, sales: Path | str, lots: Path | str, *extra: str) -> tuple[int, str]:
    """The CLI on the local engine and on Spark: same exit code, same summary, every file identical."""
    local = run("--sales", str(sales), "--lots", str(lots), "--out", str(tmp_path / "local"), *extra)
    on_spark = run(
        "--sales", str(sales), "--lots", str(lots), "--out", str(tmp_path / "spark"), "--engine", "spark", *extra
    )
    assert local[0] in (0, 1), local[1]
    assert on_spark == (local[0], local[1].replace(str(tmp_path / "local"), str(tmp_path / "spark")))
    same_outputs(tmp_path / "local", tmp_path / "spark")
    assert sorted(p.name for p in (tmp_path / "spark").iterdir()) == sorted(FILES)  # no work folder left
    return local


@pytest.mark.parametrize(("method", "memory"), [("fifo", "1k"), ("average", None)])
def test_messy_csv_exports(spark, tmp_path: Path, method: str, memory: str | None) -> None:
    """`--memory 1k`: one SKU a group, so every SKU is costed in a worker of its own; the JSON summaries agree."""
    sales, lots = messy_books(7)
    sales_csv = write_csv(tmp_path / "sales.csv", sales, SALES)
    lots_csv = write_csv(tmp_path / "lots.csv", lots, LOTS)
    extra = ("--method", method, "--format", "json", *(("--memory", memory) if memory else ()))
    code, output = both_engines(tmp_path, sales_csv, lots_csv, *extra)
    assert code == 1 and '"quarantined_skus": [' in output


def test_parquet_excel_and_a_critical_finding(spark, tmp_path: Path) -> None:
    sales, lots = messy_books(4)
    sales_file = tmp_path / "sales.parquet"
    pl.DataFrame(sales).write_parquet(sales_file)
    lots_file = tmp_path / "lots.xlsx"
    pl.DataFrame(lots).write_excel(lots_file)
    assert both_engines(tmp_path, sales_file, lots_file, "--policy", "missing_lots=critical")[0] == 1
    assert (tmp_path / "spark" / "cogs.csv").read_text().count("\n") == 1  # only the header: nothing costed


def test_a_table_and_a_parquet_dataset_of_the_cluster(spark, tmp_path: Path) -> None:
    """Inputs Spark reads itself are numbered by row in the order it reads them, as a query's are."""
    sales, lots = messy_books(9)
    spark.createDataFrame(pl.DataFrame(sales).to_arrow()).createOrReplaceTempView("sales_export")
    dataset = tmp_path / "lots_dataset"
    spark.createDataFrame(pl.DataFrame(lots).to_arrow()).coalesce(1).write.parquet(str(dataset))
    code, _ = run(
        "--sales", "sales_export", "--lots", str(dataset), "--out", str(tmp_path / "spark"), "--engine", "spark"
    )
    local = trueup.cost.compute(
        read_frame("sales_export", pl.DataFrame(sales)), read_frame("lots_dataset", pl.DataFrame(lots))
    )
    trueup.cost.write_outputs(local, tmp_path / "local")
    assert code == local.exit_code == 1
    same_outputs(tmp_path / "local", tmp_path / "spark")
    assert "lots_dataset row " in (tmp_path / "spark" / "quarantine.csv").read_text()


def test_a_bad_input_path_exits_2_and_writes_nothing(spark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nowhere" / "sales.csv"
    code, output = run(
        "--sales", str(missing), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(out), "--engine", "spark"
    )
    assert code == 2
    assert output.startswith(f"error: {missing}: Spark cannot read it: [PATH_NOT_FOUND]") and output.count("\n") == 1
    assert not out.exists()


def test_a_missing_column_exits_2_naming_the_file(spark, tmp_path: Path) -> None:
    lots = tmp_path / "lots.csv"
    lots.write_text("lot_id,sku,received,quantity\nL1,A,2026-01-01,3\n")  # no unit cost
    local = run("--sales", str(EXAMPLES / "sales.csv"), "--lots", str(lots), "--out", str(tmp_path / "a"))
    code, output = run(
        "--sales", str(EXAMPLES / "sales.csv"), "--lots", str(lots), "--out", str(tmp_path / "b"), "--engine", "spark"
    )
    assert (code, output) == local and code == 2 and "lots.csv" in output
    assert not (tmp_path / "b").exists()


def test_report_and_write_need_the_local_engine(tmp_path: Path) -> None:
    args = ("--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(tmp_path))
    code, output = run(*args, "--engine", "spark", "--report")
    assert (code, output) == (
        2,
        "error: --engine spark writes the files in --out; --report and --write need --engine local\n",
    )


def test_without_pyspark_one_line_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what `import pyspark` finds when the extra is not installed
    monkeypatch.setitem(sys.modules, "pyspark.errors", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    args = ("--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(tmp_path / "o"))
    assert run(*args, "--engine", "spark") == (2, "error: --engine spark needs PySpark: pip install 'trueup[spark]'\n")
    assert not (tmp_path / "o").exists()


def test_the_local_engine_never_imports_pyspark(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom trueup.cli import main\n"
        f"sys.argv = ['trueup', 'cost', '--sales', {str(EXAMPLES / 'sales.csv')!r}, '--lots', "
        f"{str(EXAMPLES / 'lots.csv')!r}, '--out', {str(tmp_path)!r}, '--quiet']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"

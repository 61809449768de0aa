"""Cost in bounded memory: partitioned by SKU, every output file byte for byte the in-memory engine's."""

from __future__ import annotations

import csv
import json
import logging
import random
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import trueup.cost
from tests.cost_data import random_books
from trueup.cli import app
from trueup.cost.compute import Run
from trueup.cost.partition import cost_to_directory
from trueup.cost.read import Unsplittable, read_file, scan_file
from trueup.cost.write import FILES

EXAMPLES = Path(__file__).parent.parent / "examples" / "cost"
runner = CliRunner()
SALES = ("sale_id", "sku", "date", "quantity")
LOTS = ("lot_id", "sku", "received", "quantity", "unit_cost")


def messy_books(seed: int) -> tuple[list[dict], list[dict]]:
    """Random books with the mess real exports have, spread over many SKUs."""
    rng = random.Random(seed)
    sales, lots = random_books(seed, skus=12, days=20, returns=True)
    for row in rng.sample(sales, 6):
        row["sku"] = f"  {row['sku'].lower()} "  # the same SKU, spelt another way
    sales[3]["sku"] = ""  # no SKU
    sales[5]["date"] = "03/04/2026"  # ambiguous
    sales[7]["date"] = "Jan 9, 2026"
    sales[8]["quantity"] = "1,5x"  # unreadable
    sales[9]["sale_id"] = sales[10]["sale_id"]  # a duplicate id (same SKU or not)
    sales.append({"sale_id": "S-late", "sku": "NOLOTS", "date": "2026-01-03", "quantity": "4"})
    sales.append({"sale_id": "S-over", "sku": lots[0]["sku"], "date": "2026-01-01", "quantity": "100000"})
    sales.append({"sale_id": "S-ret", "sku": lots[1]["sku"], "date": "2025-12-31", "quantity": "-3"})
    sales.append({"sale_id": "S-nl", "sku": lots[2]["sku"], "date": "2026-01-19", "quantity": "1"})
    lots[4]["unit_cost"] = "$" + lots[4]["unit_cost"]
    lots[6]["unit_cost"] = "EUR 3.10"  # another currency
    lots[7]["unit_cost"] = "0"  # a cost anomaly
    lots[8]["unit_cost"] = "1.23456"  # one lot sets the unit-cost scale of every SKU
    lots[9]["quantity"] = "2.5"  # and one the quantity scale
    lots[10]["received"] = "2026-13-45"
    lots[11]["lot_id"] = lots[12]["lot_id"]
    lots[13]["sku"] = "   "
    return sales, lots


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["cost", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def same_outputs(one: Path, other: Path) -> None:
    for name in FILES:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def both_ways(tmp_path: Path, sales: Path, lots: Path, *extra: str) -> int:
    """Run the CLI in memory and with a memory of one line per partition; the files must be identical."""
    codes = []
    for name, memory in (("whole", ()), ("parts", ("--memory", "1k"))):
        code, output = run("--sales", str(sales), "--lots", str(lots), "--out", str(tmp_path / name), *memory, *extra)
        assert code in (0, 1), output
        codes.append(code)
    assert codes[0] == codes[1]
    same_outputs(tmp_path / "whole", tmp_path / "parts")
    assert [p.name for p in (tmp_path / "parts").iterdir()] == [p.name for p in (tmp_path / "whole").iterdir()]
    return codes[0]


def test_the_readme_example(tmp_path: Path) -> None:
    assert both_ways(tmp_path, EXAMPLES / "sales.csv", EXAMPLES / "lots.csv") == 1


@pytest.mark.parametrize("method", ["fifo", "lifo", "average"])
@pytest.mark.parametrize("seed", [1, 2])
def test_messy_csv_exports(tmp_path: Path, method: str, seed: int, caplog: pytest.LogCaptureFixture) -> None:
    sales, lots = messy_books(seed)
    sales_csv = write_csv(tmp_path / "sales.csv", sales, SALES)
    lots_csv = write_csv(tmp_path / "lots.csv", lots, LOTS)
    with caplog.at_level(logging.INFO, logger="trueup.cost.partition"):
        assert both_ways(tmp_path, sales_csv, lots_csv, "--method", method) == 1
    skus = {row["sku"].strip().upper() for row in sales + lots if row["sku"].strip()}
    parts = [r.getMessage() for r in caplog.records if r.name == "trueup.cost.partition"]
    assert parts == [f"costed {len(skus) + 1} partitions"]  # one SKU each, and the rows without a SKU


def test_quoted_newlines_and_a_field_too_many_take_the_careful_reader(tmp_path: Path) -> None:
    sales, lots = messy_books(3)
    sales_csv = write_csv(tmp_path / "sales.csv", sales, SALES)
    text = sales_csv.read_text().splitlines(keepends=True)
    text[4] = 'S-q,"ABC\n123",2026-01-05,2\n'
    text[6] = text[6].rstrip("\n") + ",extra\n"
    sales_csv.write_text("".join(text))
    assert both_ways(tmp_path, sales_csv, write_csv(tmp_path / "lots.csv", lots, LOTS)) == 1


def test_parquet_and_excel_exports(tmp_path: Path) -> None:
    sales, lots = messy_books(4)
    sales_file = tmp_path / "sales.parquet"
    pl.DataFrame(sales).write_parquet(sales_file)
    lots_file = tmp_path / "lots.xlsx"
    pl.DataFrame(lots).write_excel(lots_file)
    assert both_ways(tmp_path, sales_file, lots_file) == 1


def test_a_critical_finding_stops_every_partition(tmp_path: Path) -> None:
    sales, lots = messy_books(5)
    sales_csv = write_csv(tmp_path / "sales.csv", sales, SALES)
    lots_csv = write_csv(tmp_path / "lots.csv", lots, LOTS)
    assert both_ways(tmp_path, sales_csv, lots_csv, "--policy", "missing_lots=critical") == 1
    assert (tmp_path / "parts" / "cogs.csv").read_text().count("\n") == 1  # only the header: nothing costed


def test_the_work_directory_is_left_empty(tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = ("--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv"), "--out", str(tmp_path / "o"))
    code, output = run(*args, "--memory", "100", "--work-dir", str(work))
    assert code == 1, output
    assert work.is_dir() and not list(work.iterdir())
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(FILES)  # no work folder left in --out


@pytest.mark.parametrize("memory", ["lots", "0", "-1G", "2X", ""])
def test_a_bad_memory_exits_2_and_writes_nothing(tmp_path: Path, memory: str) -> None:
    out = tmp_path / "out"
    code, output = run(
        "--sales",
        str(EXAMPLES / "sales.csv"),
        "--lots",
        str(EXAMPLES / "lots.csv"),
        "--out",
        str(out),
        "--memory",
        memory,
    )
    assert code == 2
    assert "--memory" in output and "Traceback" not in output
    assert not out.exists()


_sku = st.sampled_from(["A", "a ", "B", "C", "", "D", " d", "E"])
_day = st.sampled_from(["2026-01-01", "2026-01-02", "02/01/2026", "2026-01-03 10:00", "soon", ""])
_number = st.sampled_from(["1", "2", "3.5", "-2", "1,000", "(1)", "0", "x", "", "4.125"])
_cost = st.sampled_from(["1.00", "2.5", "$3", "EUR 4", "0", "100", "0.001", "bad", ""])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sales=st.lists(st.tuples(st.sampled_from(["S1", "S2", "S3", "S4", ""]), _sku, _day, _number), max_size=25),
    lots=st.lists(st.tuples(st.sampled_from(["L1", "L2", "L3", ""]), _sku, _day, _number, _cost), max_size=25),
    method=st.sampled_from(["fifo", "lifo", "average"]),
)
def test_property_partitioned_equals_in_memory(sales: list[tuple], lots: list[tuple], method: str) -> None:
    with tempfile.TemporaryDirectory(prefix="costpart-") as directory:
        root = Path(directory)
        sales_csv = write_csv(root / "sales.csv", [dict(zip(SALES, row, strict=True)) for row in sales], SALES)
        lots_csv = write_csv(root / "lots.csv", [dict(zip(LOTS, row, strict=True)) for row in lots], LOTS)
        whole = trueup.cost.compute(sales_csv, lots_csv, method=method)
        trueup.cost.write_outputs(whole, root / "whole")
        parts = cost_to_directory(sales_csv, lots_csv, root / "parts", memory=1, run=Run.of(method=method))
        same_outputs(root / "whole", root / "parts")
        assert parts.summary == whole.summary
        assert parts.findings == whole.findings
        assert parts.exit_code == whole.exit_code


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    lots = tmp_path / "lots.csv"
    lots.write_text("lot_id,sku,received,quantity\nL1,A,2026-01-01,3\n")  # no unit cost
    out = tmp_path / "out"
    code, output = run("--sales", str(EXAMPLES / "sales.csv"), "--lots", str(lots), "--out", str(out), "--memory", "1k")
    assert code == 2, output
    assert "lots.csv" in output and "Traceback" not in output
    assert not out.exists()


def test_a_csv_read_in_blocks_is_the_whole_read(tmp_path: Path) -> None:
    sales, _ = messy_books(6)
    path = write_csv(tmp_path / "sales.csv", sales, SALES)
    head, blocks = scan_file(path, rows=1)  # blocks of 64 bytes: one or two lines each
    frames = list(blocks)
    assert len(frames) == 86  # 209 lines, two or three whole lines to a block of 64 bytes
    assert head.frame.is_empty() and head.frame.columns == read_file(path).frame.columns
    assert pl.concat(frames).equals(read_file(path).frame)


@pytest.mark.parametrize(
    "line",
    ['S-q,"ABC\n123",2026-01-05,2\n', "S-x,A,2026-01-05,2,extra\n", 'S-y,"A,2026-01-05,2\n'],
    ids=["quoted newline", "a field too many", "unclosed quote"],
)
def test_a_csv_whose_records_are_not_lines_is_unsplittable(tmp_path: Path, line: str) -> None:
    sales, _ = messy_books(6)
    path = write_csv(tmp_path / "sales.csv", sales, SALES)
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*text[:9], line, *text[9:]]))
    for rows in (1, 1000):  # the line cut by a block boundary, or inside one block
        with pytest.raises(Unsplittable):
            list(scan_file(path, rows=rows)[1])


def test_progress_counts_the_partitions_on_stderr_only(tmp_path: Path) -> None:
    args = ["cost", "--sales", str(EXAMPLES / "sales.csv"), "--lots", str(EXAMPLES / "lots.csv")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--memory", "1k", "--progress", "-f", "json"])
    assert result.exit_code == 1, result.output
    skus = json.loads(result.stdout)["summary"]["skus"]
    assert f"partition costed {skus + 1}/{skus + 1}" in result.stderr  # one SKU each, and the rows without one

"""`make bench-cost`: trueup cost at scale, and beside Beancount and a pandas loop at equal size.

Two parts, each job in its own process so that its peak memory (ru_maxrss)
is its own:

1. scale: 1,000,000 sale lines and 1,000,000 lots over 100,000 SKUs, in
   messy formats (mixed-case padded SKUs, five date layouts, `1,234`
   quantities, `$12.34` / `12.34 USD` costs) with a few hundred bad SKUs
   (unreadable quantities, ambiguous dates, sales without lots), timed end to
   end: read, normalise, cost, write every output file. Goal: ≤ 10 s.
2. baselines: the same generator at --baseline-lines (default 100,000) sale
   lines and lots, clean, costed by (a) Beancount loading and booking a ledger
   of the same data with FIFO, (b) a straightforward pandas row-by-row FIFO
   loop, and (c) trueup end to end; all three must give identical per-sale,
   per-lot results, and the ratios are printed.

Data is generated here from a seed, never committed. Usage:

    flock /tmp/trueup-bench.lock make bench-cost
    python benchmarks/bench_cost.py --lines 200000 --baseline-lines 20000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

SEED = 20260111
LOT_COLUMNS = ("Lot", "SKU", "Received", "Quantity", "Unit Cost")
SALE_COLUMNS = ("Order ID", "Item Code", "Sold At", "Qty")
DATE_LAYOUTS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%b %d, %Y", "%Y%m%d", "%Y/%m/%d")


# -- data ---------------------------------------------------------------------------------------


def generate(directory: Path, lines: int, skus: int, *, messy: bool, seed: int = SEED, part: int = 0) -> dict[str, int]:
    """Write sales.csv and lots.csv: `lines` rows each; every sale finds stock on its day unless made bad.

    `part` > 0 appends one more part to the files: its SKUs and ids follow those of the `part` parts before
    it (parts of equal `lines` and `skus`), so a large input is made a part at a time.
    """
    rng = np.random.default_rng(seed + part)
    lot_sku = np.sort(rng.integers(0, skus, lines))
    lot_qty = rng.integers(1, 101, lines)
    lot_day = rng.integers(0, 300, lines)
    order = np.lexsort((lot_day, lot_sku))
    lot_sku, lot_qty, lot_day = lot_sku[order], lot_qty, lot_day[order]
    typical = rng.integers(100, 50_000, skus)  # cents
    lot_cost = (typical[lot_sku] * rng.uniform(0.7, 1.3, lines)).astype(np.int64)

    sale_sku = np.sort(rng.integers(0, skus, lines))
    sale_qty = rng.integers(1, 21, lines)
    sale_day = rng.integers(0, 365, lines)
    sale_day = sale_day[np.lexsort((sale_day, sale_sku))]  # in time order within each SKU
    lot_end = np.cumsum(lot_qty)
    lot_base = np.concatenate(([0], lot_end))[np.searchsorted(lot_sku, np.arange(skus))]
    sale_cum = np.cumsum(sale_qty)
    sale_first = np.searchsorted(sale_sku, sale_sku)
    sale_end = sale_cum - np.concatenate(([0], sale_cum))[sale_first] + lot_base[sale_sku]
    covering = np.minimum(np.searchsorted(lot_end, sale_end - 1, side="right"), lines - 1)
    covered = lot_sku[covering] == sale_sku  # else the SKU's lots run out: that sale is not generated
    sale_day = np.maximum(sale_day, lot_day[covering])  # never before the lot that covers its last unit
    sale_sku, sale_qty, sale_day = sale_sku[covered], sale_qty[covered], sale_day[covered]
    sale_second = rng.integers(0, 86_400, sale_sku.size)

    start = datetime(2026, 1, 1)
    lots = pl.DataFrame({"sku": lot_sku + part * skus, "day": lot_day, "qty": lot_qty, "cost": lot_cost})
    sales = pl.DataFrame({"sku": sale_sku + part * skus, "day": sale_day, "second": sale_second, "qty": sale_qty})
    first = part * lines + 1
    lots = lots.with_columns(
        pl.format("L{}", pl.int_range(pl.len()) + first).alias("Lot"),
        _sku_text(pl.col("sku"), messy, rng, lots.height).alias("SKU"),
        (pl.lit(start) + pl.duration(days=pl.col("day"))).alias("at"),
    )
    sales = sales.with_columns(
        pl.format("S{}", pl.int_range(pl.len()) + first).alias("Order ID"),
        _sku_text(pl.col("sku"), messy, rng, sales.height).alias("Item Code"),
        (pl.lit(start) + pl.duration(days=pl.col("day"), seconds=pl.col("second") if messy else 0)).alias("at"),
    )
    bad = {}
    if messy:
        lots, sales, bad = _make_messy(lots, sales, rng, skus, part * skus)
    else:
        lots = lots.with_columns(
            pl.col("at").dt.strftime("%Y-%m-%d").alias("Received"),
            pl.col("qty").cast(pl.String).alias("Quantity"),
            _money(pl.col("cost")).alias("Unit Cost"),
        )
        sales = sales.with_columns(
            pl.col("at").dt.strftime("%Y-%m-%d").alias("Sold At"), pl.col("qty").cast(pl.String).alias("Qty")
        )
    for name, frame, columns in (("lots.csv", lots, LOT_COLUMNS), ("sales.csv", sales, SALE_COLUMNS)):
        with (directory / name).open("ab" if part else "wb") as handle:
            frame.select(columns).write_csv(handle, include_header=not part)
    return {**bad, "sale_lines": sales.height, "lot_lines": lots.height}


def _sku_text(code: pl.Expr, messy: bool, rng: np.random.Generator, rows: int) -> pl.Expr:
    text = pl.format("SKU-{}", code.cast(pl.String).str.zfill(6))
    if not messy:
        return text
    style = pl.Series(rng.integers(0, 10, rows))
    return (
        pl.when(style == 0)
        .then(pl.format("  {} ", text.str.to_lowercase()))
        .when(style == 1)
        .then(text.str.to_lowercase())
        .otherwise(text)
    )


def _money(cents: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def _dates(at: pl.Expr, style: pl.Series) -> pl.Expr:
    expression = at.dt.strftime(DATE_LAYOUTS[0])
    for index, layout in enumerate(DATE_LAYOUTS[1:], 1):
        expression = pl.when(style == index).then(at.dt.strftime(layout)).otherwise(expression)
    return expression


def _make_messy(lots: pl.DataFrame, sales: pl.DataFrame, rng: np.random.Generator, skus: int, first: int):
    """Mixed layouts everywhere, and three kinds of bad SKU (about 0.5% of SKUs in all), SKUs from `first`."""
    bad_qty, bad_date, no_lots = (set((rng.choice(skus, 150, replace=False) + first).tolist()) for _ in range(3))
    lots = _messy_lots(lots, rng, no_lots)
    first_sale = sales.with_row_index("i").group_by("sku").agg(pl.col("i").min())
    qty_rows = first_sale.filter(pl.col("sku").is_in(list(bad_qty)))["i"]
    date_rows = first_sale.filter(pl.col("sku").is_in(list(bad_date)))["i"]
    index = pl.int_range(pl.len())
    sales = sales.with_columns(
        pl.when(index.is_in(date_rows.implode()))
        .then(pl.lit("03/04/2026"))
        .otherwise(_dates(pl.col("at"), pl.Series(rng.integers(0, 5, sales.height))))
        .alias("Sold At"),
        pl.when(index.is_in(qty_rows.implode()))
        .then(pl.format("{} pcs", pl.col("qty")))
        .when(pl.col("qty") >= 15)
        .then(pl.format(" {} ", pl.col("qty")))
        .otherwise(pl.col("qty").cast(pl.String))
        .alias("Qty"),
    )
    return lots, sales, {"unreadable_qty": len(bad_qty), "ambiguous_date": len(bad_date), "no_lots": len(no_lots)}


def _messy_lots(lots: pl.DataFrame, rng: np.random.Generator, no_lots: set[int]) -> pl.DataFrame:
    style = pl.Series(rng.integers(0, 4, lots.height))
    money = _money(pl.col("cost"))
    big = pl.col("qty") * 10
    return lots.with_columns(
        _dates(pl.col("at"), pl.Series(rng.integers(0, 5, lots.height))).alias("Received"),
        pl.when(big >= 1000)
        .then(pl.format("{},{}", big // 1000, (big % 1000).cast(pl.String).str.zfill(3)))
        .otherwise(big.cast(pl.String))
        .alias("Quantity"),
        pl.when(style == 0)
        .then(pl.format("${}", money))
        .when(style == 1)
        .then(pl.format("{} USD", money))
        .when(style == 2)
        .then(pl.format("USD {}", money))
        .otherwise(money)
        .alias("Unit Cost"),
    ).filter(~pl.col("sku").is_in(list(no_lots)))


# -- jobs (each runs in its own process) -----------------------------------------------------------


def job_trueup(directory: Path) -> dict:
    import trueup.cost

    started = time.perf_counter()
    result = trueup.cost.compute(directory / "sales.csv", directory / "lots.csv")
    computed = time.perf_counter()
    trueup.cost.write_outputs(result, directory / "out")
    written = time.perf_counter()
    pieces = result.pieces.join(result.lines.select("sale", "sale_id"), on="sale")
    _write_pieces(
        directory / "trueup.csv",
        pieces.select("sale_id", "lot_id", "quantity", "value"),
        result.scales.quantity + result.scales.unit_cost,
    )
    s = result.summary
    return {
        "seconds": written - started,
        "compute_seconds": computed - started,
        "write_seconds": written - computed,
        "skus": s.skus,
        "processed": s.processed,
        "quarantined": s.quarantined,
        "sale_lines": s.sale_lines,
        "findings": dict(s.categories),
        "cogs": str(s.cogs),
        "ending_value": str(s.ending_value),
    }


def job_beancount(directory: Path) -> dict:
    from beancount import loader
    from beancount.core import data

    sales = pl.read_csv(directory / "sales.csv", infer_schema=False)
    lots = pl.read_csv(directory / "lots.csv", infer_schema=False)
    ledger = directory / "ledger.beancount"
    ledger.write_text(_ledger(sales, lots), encoding="utf-8")
    started = time.perf_counter()
    entries, errors, _ = loader.load_file(str(ledger))
    seconds = time.perf_counter() - started
    assert not errors, errors[:3]
    rows = []
    for entry in entries:
        if isinstance(entry, data.Transaction) and entry.narration.startswith("S"):
            for posting in entry.postings:
                if posting.account.startswith("Assets:Inventory:"):
                    units = -posting.units.number
                    rows.append((entry.narration, posting.cost.label, units, units * posting.cost.number))
    _write_pieces(directory / "beancount.csv", rows)
    return {"seconds": seconds}


def _ledger(sales: pl.DataFrame, lots: pl.DataFrame) -> str:
    """One inventory account per SKU: Beancount scans an account's whole inventory on every reduction, so one
    shared account makes booking quadratic (109 s for 10,000 lines here) — per-SKU accounts are its fair setup."""
    skus = lots["SKU"].unique().sort()
    out = ['option "booking_method" "FIFO"\n2025-12-31 open Equity:Purchases\n2025-12-31 open Expenses:COGS\n']
    out.extend(f"2025-12-31 open Assets:Inventory:{sku}\n" for sku in skus)
    events = (
        pl.concat(
            [
                lots.select(
                    pl.col("Received").alias("day"),
                    pl.lit(0).alias("kind"),
                    pl.format(
                        '{} * "{}"\n  Assets:Inventory:{}  {} {} {{{} USD, "{}"}}\n  Equity:Purchases\n',
                        "Received",
                        "Lot",
                        "SKU",
                        "Quantity",
                        "SKU",
                        "Unit Cost",
                        "Lot",
                    ).alias("text"),
                ),
                sales.select(
                    pl.col("Sold At").alias("day"),
                    pl.lit(1).alias("kind"),
                    pl.format(
                        '{} * "{}"\n  Assets:Inventory:{}  -{} {} {{}}\n  Expenses:COGS\n',
                        "Sold At",
                        "Order ID",
                        "Item Code",
                        "Qty",
                        "Item Code",
                    ).alias("text"),
                ),
            ]
        )
        .with_row_index()
        .sort("day", "kind", "index")
    )
    out.extend(events["text"].to_list())
    return "".join(out)


def job_pandas(directory: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    sales = pd.read_csv(directory / "sales.csv", dtype=str)
    lots = pd.read_csv(directory / "lots.csv", dtype=str)
    lots["Received"] = pd.to_datetime(lots["Received"])
    sales["Sold At"] = pd.to_datetime(sales["Sold At"])
    lots = lots.sort_values(["SKU", "Received"], kind="stable")
    sales = sales.sort_values(["Item Code", "Sold At"], kind="stable")
    queues: dict[str, deque] = defaultdict(deque)
    for _, lot in lots.iterrows():
        queues[lot["SKU"]].append([lot["Lot"], int(lot["Quantity"]), Decimal(lot["Unit Cost"])])
    rows, lines = [], []
    for _, sale in sales.iterrows():
        queue, need = queues[sale["Item Code"]], int(sale["Qty"])
        cogs, taken = Decimal(0), []
        while need:
            lot = queue[0]
            take = min(need, lot[1])
            rows.append((sale["Order ID"], lot[0], take, take * lot[2]))
            cogs += take * lot[2]
            taken.append(f"{lot[0]}: {take} @ {lot[2]}")
            lot[1] -= take
            need -= take
            if not lot[1]:
                queue.popleft()
        lines.append((sale["Order ID"], sale["Item Code"], sale["Sold At"], sale["Qty"], cogs, "; ".join(taken)))
    columns = ["sale_id", "sku", "date", "quantity", "cogs", "lots"]
    pd.DataFrame(lines, columns=columns).to_csv(directory / "pandas-cogs.csv", index=False)
    seconds = time.perf_counter() - started
    _write_pieces(directory / "pandas.csv", rows)
    return {"seconds": seconds}


def _write_pieces(path: Path, rows, scale: int | None = None) -> None:
    """(sale id, lot id, units, value) rows, values as normalised exact decimals, for comparison."""
    if isinstance(rows, pl.DataFrame):
        from trueup.cost.result import decimal_column

        frame = rows.select(pl.all().exclude("value"), decimal_column(pl.col("value"), scale).alias("value"))
        rows = frame.rows()
    normal = [(s, lot, str(int(q)), str(Decimal(v).normalize()) if Decimal(v) else "0") for s, lot, q, v in rows]
    pl.DataFrame(normal, schema=["sale_id", "lot_id", "quantity", "value"], orient="row").sort(
        "sale_id", "lot_id"
    ).write_csv(path)


def peak_mib() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent at fork."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


JOBS = {"trueup": job_trueup, "beancount": job_beancount, "pandas": job_pandas}


def run_job(name: str, directory: Path, repeat: int = 1, script: str = __file__, before=lambda: None) -> dict:
    """Run a job of `script` `repeat` times, each in a fresh interpreter (after `before()`); keep the
    median run by wall time.

    Each run reports its own wall time, CPU time (user + system, all threads) and peak RSS. The machine is
    shared, so the median of several runs is the figure; the spread is kept beside it.
    """
    runs = []
    for _ in range(repeat):
        before()
        done = subprocess.run(
            [sys.executable, script, "--job", name, "--dir", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"job {name} failed:\n{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda run: run["seconds"])
    median = dict(runs[len(runs) // 2])
    median["spread"] = f"{runs[0]['seconds']:.2f}–{runs[-1]['seconds']:.2f} s over {repeat} runs" if repeat > 1 else ""
    return median


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="sale lines (and lots) at scale")
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--baseline-lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each trueup job (the median is reported)")
    parser.add_argument("--job", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also into a file
    if args.job:
        figures = JOBS[args.job](args.dir)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # includes start-up; wall time does not
        figures["peak_mib"] = peak_mib()
        print(json.dumps(figures))
        return

    print(
        f"trueup cost benchmark — {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"polars {pl.__version__}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        scale = Path(tmp) / "scale"
        scale.mkdir()
        started = time.perf_counter()
        bad = generate(scale, args.lines, args.skus, messy=True)
        size = sum(f.stat().st_size for f in scale.iterdir()) / 2**20
        print(
            f"\n1. scale: {args.lines:,} sale lines + {args.lines:,} lots over {args.skus:,} SKUs, messy "
            f"({size:.0f} MiB of CSV, made in {time.perf_counter() - started:.1f} s; bad SKUs planted: {bad})"
        )
        figures = run_job("trueup", scale, args.repeat)
        print(
            f"   trueup end to end: {figures['seconds']:.2f} s (read+normalise+cost {figures['compute_seconds']:.2f} s,"
            f" write {figures['write_seconds']:.2f} s; {figures['spread']}), CPU {figures['cpu_seconds']:.1f} s, "
            f"peak {figures['peak_mib']:.0f} MiB — goal ≤ 10 s: {'met' if figures['seconds'] <= 10 else 'MISSED'}"
        )
        print(
            f"   {figures['processed']:,} of {figures['skus']:,} SKUs costed, {figures['quarantined']:,} quarantined "
            f"{figures['findings']}; {figures['sale_lines']:,} sale lines, COGS {figures['cogs']}"
        )

        base = Path(tmp) / "base"
        base.mkdir()
        generate(base, args.baseline_lines, max(args.baseline_lines // 10, 1), messy=False)
        print(
            f"\n2. baselines: {args.baseline_lines:,} sale lines + {args.baseline_lines:,} lots over "
            f"{max(args.baseline_lines // 10, 1):,} SKUs, clean"
        )
        results = {"trueup": run_job("trueup", base, args.repeat)}
        results |= {name: run_job(name, base) for name in ("beancount", "pandas")}
        reference = pl.read_csv(base / "trueup.csv", infer_schema=False)
        for name in ("beancount", "pandas"):
            same = pl.read_csv(base / f"{name}.csv", infer_schema=False).equals(reference)
            ratio = results[name]["seconds"] / results["trueup"]["seconds"]
            print(
                f"   {name:<9} {results[name]['seconds']:7.2f} s, CPU {results[name]['cpu_seconds']:6.1f} s, "
                f"peak {results[name]['peak_mib']:5.0f} MiB; "
                f"trueup is {ratio:.0f}× faster; identical results ({reference.height:,} sale/lot pieces): {same}"
            )
            if not same:
                raise SystemExit(f"{name} disagrees with trueup")
        trueup = results["trueup"]
        print(
            f"   trueup    {trueup['seconds']:7.2f} s, CPU {trueup['cpu_seconds']:6.1f} s, peak "
            f"{trueup['peak_mib']:5.0f} MiB (end to end, writing every output file; {trueup['spread']})"
        )


if __name__ == "__main__":
    main()

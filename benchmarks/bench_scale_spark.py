"""`make bench-scale`, the Spark half: `trueup cost --engine spark` in local mode beside the local engine.

The same messy exports (`bench_cost.generate`: mixed-case padded SKUs, five
date layouts, `1,234` quantities, `$12.34` costs, a few hundred bad SKUs) are
costed twice, each by the real CLI in its own process:

1. the local engine (`trueup cost`, in memory when the inputs fit, else by SKU);
2. Spark in local mode (`--engine spark --spark-master local[2]`).

Every output file of (2) must equal (1)'s byte for byte (checked each run).
Reported: wall time of each, their ratio, and the peak resident memory of the
whole process tree (the driver, its JVM and the Python workers, sampled every
0.1 s: the JVM is a child of the driver, so ru_maxrss alone would miss it).
Spark is there to be correct and to scale out, not to win on one machine.

    python benchmarks/bench_scale_spark.py --lines 1000000     # 1,000,000 sales + 1,000,000 lots
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from bench_cost import generate

FILES = ("cogs.csv", "lots_remaining.csv", "quarantine.csv", "quarantined_rows.csv", "summary.json")
TRUEUP = str(Path(sys.executable).with_name("trueup"))


def measured(command: list[str]) -> dict:
    """Run `command`; its wall time, exit code and the peak RSS of its process tree (MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()}")
    return {"seconds": round(seconds, 2), "exit": process.returncode, "peak_mib": round(peak / 2**20)}


def run(lines: int, skus: int, directory: Path, master: str) -> dict:
    bad = generate(directory, lines, skus, messy=True)
    inputs = ["--sales", str(directory / "sales.csv"), "--lots", str(directory / "lots.csv"), "--quiet"]
    local = measured([TRUEUP, "cost", *inputs, "--out", str(directory / "local")])
    spark = measured(
        [TRUEUP, "cost", *inputs, "--out", str(directory / "spark"), "--engine", "spark", "--spark-master", master]
    )
    for name in FILES:
        if (directory / "local" / name).read_bytes() != (directory / "spark" / name).read_bytes():
            raise SystemExit(f"{name}: the Spark engine's file differs from the local engine's")
    if local["exit"] != spark["exit"]:
        raise SystemExit(f"exit codes differ: local {local['exit']}, spark {spark['exit']}")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "load": os.getloadavg()[0],
        "lines": {"sales": bad["sale_lines"], "lots": lines, "skus": skus},
        "local": local,
        "spark": spark,
        "ratio": round(spark["seconds"] / local["seconds"], 2),
        "identical": list(FILES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lots (and about as many sale lines)")
    parser.add_argument("--skus", type=int, default=None, help="SKUs (default: lines / 10)")
    parser.add_argument("--spark-master", default="local[2]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-spark-") as directory:
        result = run(args.lines, args.skus or max(args.lines // 10, 1), Path(directory), args.spark_master)
    print(json.dumps(result))
    local, spark = result["local"], result["spark"]
    print(
        f"cost on Spark ({args.spark_master}), {result['lines']['sales']:,} sales + {args.lines:,} lots: "
        f"local {local['seconds']} s / {local['peak_mib']} MiB, spark {spark['seconds']} s / {spark['peak_mib']} MiB "
        f"(driver + JVM + workers), ratio {result['ratio']}x, every file identical",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

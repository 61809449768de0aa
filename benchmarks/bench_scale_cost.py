"""`make bench-scale`, the local half: `trueup cost` by SKU partitions in bounded memory, beside the in-memory engine.

The messy exports of `bench_cost.generate` (mixed-case padded SKUs, five date
layouts, `1,234` quantities, `$12.34` costs, 450 bad SKUs a part) are written
a part of at most 1,000,000 lines at a time, so the generator never holds the
whole input. Then, each by the real CLI in its own process:

1. the partitioned engine (`trueup cost --memory M`, default 1G), the run the
   goal is about: 10,000,000 sales + 10,000,000 lots in <= 60 s and <= 2 GiB;
2. its baseline, the in-memory engine (the inputs costed whole, as when they
   fit), at sizes up to --baseline-lines: its memory grows with the input,
   so at 10,000,000 lines it would need about 14 GiB.

When both run, every output file must be byte for byte the same (checked).
Reported: wall time, peak RSS of each process tree (sampled every 0.1 s by
`bench_scale_spark.measured`), their ratios, and the machine.

    python benchmarks/bench_scale_cost.py --lines 1000000                     # 1M + 1M, with the baseline
    python benchmarks/bench_scale_cost.py --lines 10000000 --baseline-lines 0 # 10M + 10M, partitioned only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psutil
from bench_cost import generate
from bench_scale_spark import FILES, TRUEUP, measured

PART = 1_000_000  # the most lines the generator makes at a time


def make_inputs(directory: Path, lines: int, skus: int) -> dict[str, int]:
    """sales.csv and lots.csv of `lines` lots (and about as many sales) over `skus` SKUs, a part at a time."""
    parts = -(-lines // PART)
    made = {"sale_lines": 0, "lot_lines": 0, "bad_skus": 0}
    for part in range(parts):
        bad = generate(directory, lines // parts, skus // parts, messy=True, part=part)
        made["sale_lines"] += bad.pop("sale_lines")
        made["lot_lines"] += bad.pop("lot_lines")
        made["bad_skus"] += sum(bad.values())
    return made


def run(lines: int, skus: int, memory: str, baseline_lines: int, directory: Path) -> dict:
    made = make_inputs(directory, lines, skus)
    inputs = ["--sales", str(directory / "sales.csv"), "--lots", str(directory / "lots.csv"), "--quiet"]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "load": os.getloadavg()[0],
        "lines": made | {"skus": skus},
        "memory": memory,
        "partitioned": measured([TRUEUP, "cost", *inputs, "--out", str(directory / "parts"), "--memory", memory]),
    }
    if lines <= baseline_lines:
        whole = measured([TRUEUP, "cost", *inputs, "--out", str(directory / "whole"), "--memory", "1T"])
        for name in FILES:
            if (directory / "parts" / name).read_bytes() != (directory / "whole" / name).read_bytes():
                raise SystemExit(f"{name}: the partitioned engine's file differs from the in-memory engine's")
        parts = result["partitioned"]
        result |= {
            "in_memory": whole,
            "time_ratio": round(parts["seconds"] / whole["seconds"], 2),
            "memory_ratio": round(parts["peak_mib"] / whole["peak_mib"], 2),
            "identical": list(FILES),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lots (and about as many sale lines)")
    parser.add_argument("--skus", type=int, default=None, help="SKUs (default: lines / 10)")
    parser.add_argument("--memory", default="1G", help="the partitioned run's --memory")
    parser.add_argument("--baseline-lines", type=int, default=3_000_000, help="largest size the baseline runs at")
    parser.add_argument("--work-dir", default=None, help="where the inputs and outputs go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-cost-", dir=args.work_dir) as directory:
        skus = args.skus or max(args.lines // 10, 1)
        result = run(args.lines, skus, args.memory, args.baseline_lines, Path(directory))
    print(json.dumps(result))
    parts, made = result["partitioned"], result["lines"]
    line = (
        f"cost by partitions (--memory {args.memory}), {made['sale_lines']:,} sales + {made['lot_lines']:,} lots: "
        f"{parts['seconds']} s, {parts['peak_mib']} MiB"
    )
    if "in_memory" in result:
        whole = result["in_memory"]
        line += (
            f"; in memory {whole['seconds']} s, {whole['peak_mib']} MiB; ratios {result['time_ratio']}x time, "
            f"{result['memory_ratio']}x memory; every file identical"
        )
    print(line, file=sys.stderr)


if __name__ == "__main__":
    main()

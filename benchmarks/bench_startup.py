"""`make bench-startup`: how long the command line takes to start, beside `python -c pass` as the floor.

Median wall time (of `--runs` runs, default 7) of `trueup --help`, of every command's `--help`
(sub-commands included) and of one real cheap command (`trueup check` on the demo shop, SQLite).
The goal is ≤ 0.3 s each. Usage:

    make bench-startup [BENCH_ARGS="--runs 11"]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer.main

from trueup.cli import app

TRUEUP = str(Path(sys.executable).with_name("trueup"))


def commands(group=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the app, sub-commands included, in `--help` order."""
    group = group or typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths.extend(commands(command, (*prefix, name)))
    return paths


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench_startup") as tmp:
        subprocess.run([TRUEUP, "demo", tmp, "--quiet"], stdout=subprocess.DEVNULL, check=True)
        cases = [("python -c pass (floor)", [sys.executable, "-c", "pass"]), ("trueup --help", [TRUEUP, "--help"])]
        cases += [(f"trueup {' '.join(path)} --help", [TRUEUP, *path, "--help"]) for path in commands()]
        cases.append(("trueup check (demo shop)", [TRUEUP, "check", "--config", f"{tmp}/trueup.toml"]))
        print(f"median wall time of {runs} runs; goal ≤ 0.300 s")
        for label, argv in cases:
            seconds = median_seconds(argv, runs)
            print(f"{label:<40} {seconds:7.3f} s {'' if label.startswith('python') or seconds <= 0.3 else '(over)'}")


if __name__ == "__main__":
    main()

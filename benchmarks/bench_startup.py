"""`make bench-startup`: how long the command line takes to start, beside `python -c pass` as the floor.

For `trueup --help`, every command's and sub-command's `--help`, and one real cheap command
(`trueup check` on the demo shop, SQLite): the median wall time and CPU time (user + system)
of `--runs` runs (default 7, interleaved: one round runs every case once), and the peak RSS.
The goal is ≤ 0.3 s wall each; on a shared machine the CPU time says what the code costs
when the wall time says how long a person waited. With `--baseline SRC`, `trueup --help`
also runs from that source tree (e.g. an export of main) in the same rounds. Usage:

    make bench-startup [BENCH_ARGS="--runs 11 --baseline /tmp/main/src"]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from trueup.cli.app import command_paths

GOAL = 0.3  # seconds, wall


class Case(NamedTuple):
    label: str
    argv: list[str]
    env: dict[str, str] | None = None


class Figures(NamedTuple):
    wall: float  # median seconds
    cpu: float  # median seconds, user + system
    rss_mb: float  # the largest peak RSS of the runs


def measure(case: Case) -> tuple[float, float, float]:
    """One run of `case`: wall seconds, CPU seconds and peak RSS in MB of that child alone (wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(case.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=case.env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_rounds(cases: list[Case], runs: int) -> list[Figures]:
    """Every case once per round, `runs` rounds, so load changes hit all cases alike."""
    samples: list[list[tuple[float, float, float]]] = [[] for _ in cases]
    for _ in range(runs):
        for index, case in enumerate(cases):
            samples[index].append(measure(case))
    return [
        Figures(statistics.median(w for w, _, _ in s), statistics.median(c for _, c, _ in s), max(m for _, _, m in s))
        for s in samples
    ]


BESIDE_BASELINE = ((), ("check",), ("ledger", "receive"))  # whose --help also runs from the baseline tree


def cases_for(trueup: str, shop: str, baseline: str | None) -> list[Case]:
    """The floor, every command path's --help, a real check; with `baseline`, some of them from that tree too."""
    check = ["check", "--config", f"{shop}/trueup.toml"]
    cases = [Case("python -c pass (floor)", [sys.executable, "-c", "pass"])]
    if baseline:
        env = {**os.environ, "PYTHONPATH": baseline}
        cases += [Case(f"{_label(p, '--help')} (baseline)", [trueup, *p, "--help"], env) for p in BESIDE_BASELINE]
        cases.append(Case("trueup check (demo shop) (baseline)", [trueup, *check], env))
    cases += [Case(_label(path, "--help"), [trueup, *path, "--help"]) for path in [(), *command_paths()]]
    cases.append(Case("trueup check (demo shop)", [trueup, *check]))
    return cases


def _label(path: tuple[str, ...], *rest: str) -> str:
    return " ".join(("trueup", *path, *rest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", metavar="SRC", help="a source tree to run `trueup --help` from, beside")
    args = parser.parse_args()
    trueup = str(Path(sys.executable).with_name("trueup"))
    with tempfile.TemporaryDirectory(prefix="bench_startup") as shop:
        subprocess.run([trueup, "demo", shop, "--quiet"], stdout=subprocess.DEVNULL, check=True)
        cases = cases_for(trueup, shop, args.baseline)
        figures = run_rounds(cases, args.runs)
    load = os.getloadavg()
    print(f"median of {args.runs} interleaved runs; goal ≤ {GOAL:.3f} s wall; load average {load[0]:.1f}")
    print(f"{'':<44} {'wall':>8} {'cpu':>8} {'peak RSS':>9}  baseline/this (wall, cpu)")
    by_label = {case.label: got for case, got in zip(cases, figures, strict=True)}
    for label, got in by_label.items():
        over = "" if label.startswith("python") or got.wall <= GOAL else "  (over)"
        before = by_label.get(f"{label} (baseline)")
        ratio = f"  {before.wall / got.wall:5.1f}x {before.cpu / got.cpu:5.1f}x" if before else ""
        print(f"{label:<44} {got.wall:7.3f}s {got.cpu:7.3f}s {got.rss_mb:6.0f} MB{ratio}{over}")
    measured = [got for label, got in by_label.items() if label.startswith("trueup ") and "(baseline)" not in label]
    within = sum(got.wall <= GOAL for got in measured)
    print(f"{within} of {len(measured)} within the goal; slowest {max(g.wall for g in measured):.3f} s")


if __name__ == "__main__":
    main()

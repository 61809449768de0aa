# Every target does its own set-up: a virtual environment in .venv, installed from pyproject.toml.
PYTHON ?= python3
# pytest-xdist workers for `make test`: most tests wait on a database or a child process
TEST_WORKERS ?= auto
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-check bench-apply bench-sync bench-cost bench-cost-write bench-ledger bench-serve profile-serve bench-startup bench-guard bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trueup demo build/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

bench: bench-check bench-apply bench-sync bench-cost bench-cost-write bench-ledger bench-serve bench-guard bench-scale

bench-check: $(STAMP)
	$(BIN)/python benchmarks/bench_check.py $(BENCH_ARGS)

bench-apply: $(STAMP)
	$(BIN)/python benchmarks/bench_apply.py $(BENCH_ARGS)

bench-sync: $(STAMP)
	$(BIN)/python benchmarks/bench_sync.py $(BENCH_ARGS)

bench-cost: $(STAMP)
	$(BIN)/python benchmarks/bench_cost.py $(BENCH_ARGS)

bench-cost-write: $(STAMP)
	$(BIN)/python benchmarks/bench_cost_write.py $(BENCH_ARGS)

bench-ledger: $(STAMP)
	$(BIN)/python benchmarks/bench_ledger.py $(BENCH_ARGS)

bench-serve: $(STAMP)
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_serve.py $(BENCH_ARGS)

# Statements and CPU per sync hook and ledger posting, the application in-process (one client).
profile-serve: $(STAMP)
	$(BIN)/python benchmarks/profile_serve.py $(BENCH_ARGS)

# The guard's write cost per mode, then a capture round beside the time-column round and a full check.
bench-guard: $(STAMP)
	$(BIN)/python benchmarks/bench_guard_writes.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench_guard_round.py $(BENCH_ROUND_ARGS)

# The scale runs (issue 14): cost on Spark beside the local engine; chunked apply beside one transaction, and resume.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale_cost.py $(BENCH_SCALE_COST_ARGS)
	$(BIN)/python benchmarks/bench_scale_spark.py $(BENCH_SPARK_ARGS)
	$(BIN)/python benchmarks/bench_scale_apply.py $(BENCH_APPLY_ARGS)

bench-startup: $(STAMP)
	$(BIN)/python benchmarks/bench_startup.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache

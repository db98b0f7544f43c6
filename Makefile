# kimp: two commands do everything on a fresh machine with Python 3.11 and the package registries.
#   make demo   set up .venv and run the main job (a short range of the whole market-data graph)
#   make test   set up .venv and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch==2.13.0 CPU comes from pip's find-links (uv does not read pip's config); empty when pip has none.
FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)

.PHONY: setup demo test lint ui bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. uv is ~5x faster than pip here; torch must be
# pinned to 2.13.0 and found through UV_FIND_LINKS (see docs/decisions.md).
# --compile-bytecode: write the .pyc files once at install; with PYTHONDONTWRITEBYTECODE set (as on this
# machine) every process would otherwise recompile torch, transformers and dagster (about 80 s under load).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "kimp needs Python 3.11 (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	UV_FIND_LINKS=$(FIND_LINKS) $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev,ref]'
	@touch $(STAMP)

demo: setup
	$(BIN)/kimp demo

# Two workers (the machine has two cores; most tests are single-threaded Python); a test file stays on one
# worker, so module fixtures (a walk-forward, a trained text model) are built once. --no-loadscope-reorder:
# files go out in the order tests/conftest.py collects them (longest first); xdist's default re-sorts them
# by their number of tests, which sent the 4-test test_cli.py (the demo, the longest test) near the end.
test: setup
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=30

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: setup
	$(BIN)/kimp ui

bench: setup
	UV_FIND_LINKS=$(FIND_LINKS) $(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev,ref,bench]'
	$(BIN)/python benchmarks/bench_market_data.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_lstm.py
	$(BIN)/python benchmarks/bench_backtest.py

clean:
	rm -rf .kimp $(VENV)

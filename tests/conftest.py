"""Shared fixtures: an isolated KIMP_HOME per test, and Dagster resources over a fake market."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


@pytest.fixture
def kimp_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private KIMP_HOME (store + Dagster home) so tests never touch the project's .kimp/."""
    home = tmp_path / "kimp_home"
    for name in list(os.environ):
        if name.startswith("KIMP_") or name == "DAGSTER_HOME":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KIMP_HOME", str(home))
    return home


# The longest files first. `make test` runs two xdist workers with one file per worker; collected in
# alphabetical order, test_walk_forward_cli.py (a whole walk-forward in its fixture) started last and left the
# other worker idle for minutes. Stable sort: every other test keeps its order. xdist hands the files out in
# this order only with --no-loadscope-reorder (the Makefile passes it); by default it re-sorts them by their
# number of tests. Measured 2026-11-29 one file at a time (shared 2-core machine, load 1-5, warm numba
# cache): test_walk_forward_cli.py ~175 s, test_cli.py 120 s (the demo 112 s), test_sentiment_pipeline.py
# 81 s, test_model_assets.py 54 s, test_instance_safety.py 33 s; every other file under 25 s, so the
# alphabetical rest evens out the end. CI (a fresh clone: numba compiles, cold caches) is 2-3x slower.
LONGEST_FIRST = (
    "test_walk_forward_cli.py",
    "test_cli.py",
    "test_sentiment_pipeline.py",
    "test_model_assets.py",
    "test_instance_safety.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))

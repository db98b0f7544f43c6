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
# number of tests.
LONGEST_FIRST = ("test_walk_forward_cli.py", "test_model_assets.py", "test_cli.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))

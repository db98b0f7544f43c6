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

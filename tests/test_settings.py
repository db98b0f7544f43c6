"""Settings from the environment: defaults, and a clear error naming each bad variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kimp.models.base import WalkForwardConfig
from kimp.settings import Settings


def test_defaults_live_under_kimp_home(tmp_path: Path) -> None:
    s = Settings.from_env({"KIMP_HOME": str(tmp_path)})
    assert (s.source, s.storage_uri, s.dagster_home) == (
        "simulated",
        str(tmp_path / "store"),
        tmp_path / "dagster",
    )
    assert s.orderbook_interval_ms == 5000 and s.start_date.isoformat() == "2017-08-17"


def test_relative_data_dir_is_resolved(tmp_path: Path) -> None:
    s = Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_SOURCE": "files", "KIMP_DATA_DIR": "."})
    assert s.data_dir is not None and Path(s.data_dir).is_absolute()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KIMP_SOURCE": "pigeon"}, "KIMP_SOURCE"),
        ({"KIMP_SOURCE": "files"}, "KIMP_DATA_DIR"),
        ({"KIMP_ORDERBOOK_MS": "7000"}, "KIMP_ORDERBOOK_MS"),  # does not divide a day
        ({"KIMP_ORDERBOOK_MS": "50"}, "KIMP_ORDERBOOK_MS"),
        ({"KIMP_SEED": "seven"}, "KIMP_SEED"),
        ({"KIMP_START_DATE": "2017/08/17"}, "KIMP_START_DATE"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Settings.from_env({"KIMP_HOME": str(tmp_path), **env})


def test_prod_environment_requires_a_shared_store(tmp_path: Path) -> None:
    from kimp_pipelines.resources import build_resources

    with pytest.raises(ValueError, match="KIMP_STORAGE_URI"):
        Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_ENV": "prod"})
    settings = Settings.from_env(
        {"KIMP_HOME": str(tmp_path), "KIMP_ENV": "prod", "KIMP_STORAGE_URI": "s3://b/k"}
    )
    assert build_resources(settings)["io_manager"].base_uri == "s3://b/k"


def test_every_variable_reaches_its_field(tmp_path: Path) -> None:
    env = {
        "KIMP_HOME": str(tmp_path),
        "KIMP_SEED": "11",
        "KIMP_WF_HORIZON_MINUTES": "120",
        "KIMP_WF_WINDOW_DAYS": "5",
        "KIMP_WF_TRIALS": "3",
        "KIMP_WF_MODELS": "LightGBM, lstm",
        "KIMP_WF_LSTM_SIZE": "prd",
        "KIMP_WF_KR_VENUE": "bithumb",
        "KIMP_BT_STRATEGIES": "zscore,xgboost",
        "KIMP_BT_CARRY": "false",
        "KIMP_PLUGINS": "a.b, c",
        "KIMP_OPTUNA_STORAGE": "postgresql://u:secret@h/db",
    }
    s = Settings.from_env(env)
    wf = s.walk_forward
    assert (wf.horizon_minutes, wf.window_days, wf.n_trials, wf.models) == (120, 5, 3, ("lightgbm", "lstm"))
    assert (wf.lstm_size, wf.kr_venue, wf.seed, s.seed) == ("prd", "bithumb", 11, 11)
    assert s.backtest.strategies == ("zscore", "xgboost") and s.plugins == ("a.b", "c")
    assert s.backtest.carry is False and Settings(home=tmp_path).backtest.carry is True
    # defaults come from the domain's own config objects, in one place
    assert Settings(home=tmp_path).walk_forward == WalkForwardConfig()
    # a secret from the environment is bound through EnvVar (the UI shows the name, not the value) ...
    from dagster import EnvVar

    from kimp_pipelines.resources import build_resources

    assert build_resources(s)["modeling"].optuna_storage == EnvVar("KIMP_OPTUNA_STORAGE")
    # ... unless the settings were changed in code: the resource then gets the settings' value
    changed = replace(s, optuna_storage="sqlite:///other.db")
    assert build_resources(changed)["modeling"].optuna_storage == "sqlite:///other.db"
    assert "secret" not in repr(s)  # URLs that may hold passwords stay out of logs
    assert "secret" not in repr(Settings(home=tmp_path, dagster_pg_url="postgresql://u:secret@h/db"))


def test_changing_settings_never_touches_the_environment(tmp_path: Path) -> None:
    import os

    before = dict(os.environ)
    s = (
        Settings(home=tmp_path)
        .with_walk_forward(window_days=3, models=("xgboost",))
        .with_backtest(strategies=("zscore",))
    )
    assert s.walk_forward.window_days == 3 and s.backtest.strategies == ("zscore",)
    assert dict(os.environ) == before


def test_the_cli_never_writes_the_environment() -> None:
    """Options reach the runs as a changed Settings object: no command writes os.environ (kimp ui hands
    its child process an environment of its own)."""
    import re

    root = Path(__file__).resolve().parents[1] / "kimp_pipelines"
    for module in ("cli.py", "sentiment_cli.py", "runner.py"):
        source = (root / module).read_text()
        assert not re.search(r"os\.environ\s*(\[|\.update|\.setdefault|\.pop|\.clear)|os\.putenv", source), (
            module
        )

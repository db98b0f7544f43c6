"""Settings from the environment: defaults, and a clear error naming each bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

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
        build_resources("prod", Settings.from_env({"KIMP_HOME": str(tmp_path)}))
    resources = build_resources(
        "prod", Settings.from_env({"KIMP_HOME": str(tmp_path), "KIMP_STORAGE_URI": "s3://b/k"})
    )
    assert resources["io_manager"].base_uri == "s3://b/k"

"""The feature catalog: complete, honest (one entry per column), versioned, and its look-backs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from kimp.features import (
    FeatureConfig,
    build_features,
    catalog,
    catalog_frame,
    feature_set_version,
    lookback_days,
)
from kimp.testing import synthetic_inputs

REQUIRED_FAMILIES = {
    "returns",
    "volatility",
    "momentum",
    "mean_reversion",
    "rsi",
    "macd",
    "bollinger",
    "stochastic",
    "ichimoku",
    "vwap",
    "premium",
    "orderbook",
    "liquidity",
    "volume",
    "onchain",
    "macro",
    "news",
    "sentiment",
}


def test_default_catalog_has_500_plus_fully_described_features() -> None:
    specs = catalog()
    assert len(specs) >= 500
    assert len({s.name for s in specs}) == len(specs)
    assert {s.family for s in specs} >= REQUIRED_FAMILIES
    for s in specs:
        assert s.formula and s.family and s.name.isidentifier(), s
        assert timedelta(0) <= s.lookback <= timedelta(days=14), s
        assert set(s.sources) <= {
            "premium",
            "candles",
            "fx",
            "orderbook",
            "onchain",
            "macro",
            "news",
            "news_sentiment",
        }, s
        json.dumps(s.params)  # params are plain JSON values
    families = Counter(s.family for s in specs)
    assert (
        families["rsi"] == 45 and families["macd"] == 45
    )  # (14, 21, 50) and (12, 26, 9) x 5 timeframes x 3 series


def test_every_catalog_entry_is_a_column_and_vice_versa() -> None:
    start = datetime(2024, 2, 1, tzinfo=UTC)
    inputs = synthetic_inputs(start - timedelta(days=1), 2, interval_s=300, orderbook_every_s=60)
    result = build_features(inputs, start=start, end=start + timedelta(hours=6))
    names = [s.name for s in catalog()]
    assert result.frame.columns == ["ts", "coin", "interval_s", *names]
    assert all(result.frame.schema[n] == pl.Float32 for n in names)
    # 5-minute bars cannot express 1-minute windows: those columns are null and say why
    assert result.frame["kr_ret_1m"].null_count() == result.frame.height
    assert "not a whole number of 300 s bars" in result.unavailable["returns/1m"]
    assert result.frame["kr_ret_5m"].null_count() < result.frame.height


def test_catalog_frame_and_version() -> None:
    frame = catalog_frame()
    assert frame.columns == ["name", "family", "params", "formula", "lookback_s", "sources", "refresh"]
    refresh = dict(zip(frame["name"], frame["refresh"], strict=True))
    assert refresh["kr_ret_1m"] == refresh["prem_fx"] == refresh["kr_ob_spread_bps"] == "tick"
    assert refresh["kr_bn_volume_ratio"] == refresh["kr_vpin_1h"] == refresh["kr_rsi14_1h"] == "bar"
    assert frame.height == len(catalog())
    assert frame.filter(pl.col("name") == "kr_rsi14_1h")["lookback_s"].item() == 15 * 3600
    version = feature_set_version()
    assert len(version) == 12 and version == feature_set_version(FeatureConfig())
    assert feature_set_version(FeatureConfig(rsi_periods=(14,))) != version


def test_longer_indicators_than_the_max_lookback_are_left_out() -> None:
    names = {s.name for s in catalog()}
    assert "kr_rsi50_4h" in names and "kr_rsi14_1d" not in names  # 15 days > 14
    short = {
        s.name for s in catalog(FeatureConfig(max_lookback_days=7, garch_fit_days=3, garch_refit_days=3))
    }
    assert "kr_rsi50_4h" not in short and "kr_rsi21_4h" in short
    assert max(
        s.lookback for s in catalog(FeatureConfig(max_lookback_days=7, garch_fit_days=3, garch_refit_days=3))
    ) <= timedelta(days=7)


def test_lookback_days_per_table() -> None:
    days = lookback_days()
    assert set(days) == {
        "premium",
        "candles",
        "fx",
        "orderbook",
        "onchain",
        "macro",
        "news",
        "news_sentiment",
    }
    assert days["premium"] == 14 and days["orderbook"] <= 1 and days["news"] == 1
    assert days["news_sentiment"] == 7  # the sentiment family's trailing 7-day mean
    assert days["macro"] > 5 and days["fx"] >= 5  # last Friday's values and their previous observation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coins": ()}, "coins"),
        ({"max_lookback_days": 20}, "max_lookback_days"),
        ({"garch_fit_days": 10, "garch_refit_days": 7}, "GARCH look-back"),
        ({"macd": (26, 12, 9)}, "macd"),
        ({"kr_venues": ("coinone",)}, "kr_venues"),
    ],
)
def test_config_is_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**kwargs)  # type: ignore[arg-type]


def test_docs_are_generated_from_the_catalog(tmp_path: Path) -> None:
    from kimp.features.docs import render_markdown, write_docs

    text = render_markdown()
    assert feature_set_version() in text and "kr_rsi14_1h" in text
    out = write_docs(tmp_path / "features.md")
    assert out.read_text() == text
    committed = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert committed.read_text() == text, "docs/features.md is stale: run python -m kimp.features.docs"


def test_the_feature_package_never_imports_dagster() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kimp.features, kimp.features.docs, kimp.testing; "
        "sys.exit(1 if 'dagster' in sys.modules else 0)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0
    )

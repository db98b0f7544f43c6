"""What a researcher reads: table metadata that renders and parses in the Dagster UI, HTML backtest
reports that name what each row and heading shows, and the range index page."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kimp.backtest import BacktestConfig, html_report, market_from_tables, run_event_driven, run_vectorized
from kimp.backtest.signals import zscore_targets
from kimp.market_data.source import build_source
from kimp.premium import compute_premium
from kimp.reporting.index import report_path, write_index
from kimp_pipelines.assets.metadata import frame_table, list_table, mapping_table, table_metadata
from tests.ui_checks import rendered_tables

DAY = date(2024, 3, 1)


def test_table_metadata_renders_and_parses_with_awkward_values() -> None:
    ts = datetime(2024, 3, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": [ts, ts + timedelta(minutes=1), ts + timedelta(minutes=2)],
            "coin": ["BTC", "ETH", None],
            "x": [1.23456789, float("nan"), float("inf")],
            "n": [1, None, 3],
            "ok": [True, False, None],
            "day": [date(2024, 3, 1)] * 3,
            "tags": [["a"], [], None],
        }
    )
    meta = {
        **table_metadata(frame, preview_columns=["ts", "coin", "x"]),
        "full": frame_table(frame),
        "weights": mapping_table({"xgboost": 0.6, "lstm": 0.4}, key="member", value="weight"),
        "studies": mapping_table({"s1": {"lr": 0.1, "depth": 4}, "s2": {"lr": 0.2}}, key="study"),
        "unavailable": mapping_table({}, key="family", value="why"),
        "features_used": list_table(["a", "b"], column="feature"),
    }
    tables = rendered_tables(meta)
    assert tables["full"][0] == {
        "ts": "2024-03-01T00:00:00+00:00",
        "coin": "BTC",
        "x": 1.23457,
        "n": 1,
        "ok": True,
        "day": "2024-03-01",
        "tags": '["a"]',
    }
    assert tables["full"][1]["x"] is None and tables["full"][2]["x"] is None  # NaN, inf: null
    assert set(tables["preview"][0]) == {"ts", "coin", "x"}
    assert tables["weights"] == [{"member": "xgboost", "weight": 0.6}, {"member": "lstm", "weight": 0.4}]
    assert tables["studies"][1] == {"study": "s2", "lr": 0.2, "depth": None}
    assert tables["unavailable"] == [] and tables["features_used"][1] == {"rank": 2, "feature": "b"}
    # counts are the table's own: every column of the stored frame is in the schema
    assert meta["columns"] == frame.width == len(meta["dagster/column_schema"].columns)
    assert meta["first_ts"] == "2024-03-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def day_results() -> tuple[list, list[str]]:
    """Two strategies x two engines on one market of the simulated day."""
    src = build_source("simulated")
    candles = {v: src.candles(v, DAY) for v in ("upbit", "bithumb", "binance")}
    premium = compute_premium(
        {"upbit": candles["upbit"], "bithumb": candles["bithumb"]}, candles["binance"], src.fx(DAY), day=DAY
    )
    market = market_from_tables(
        premium, pl.concat(list(candles.values())), src.orderbook(DAY), coin="ETH", kr_venue="bithumb"
    )
    results, names = [], []
    for name, entry in (("zscore", 2.0), ("zscore_wide", 3.0)):
        target, _ = zscore_targets(np.asarray(market.premium, dtype=np.float64), 120, entry, 0.5, 1.0)
        signals = pl.DataFrame({"ts": market.ts_series(), "target": target})
        for result in (
            run_vectorized(market, signals, BacktestConfig()),
            run_event_driven(market, signals, BacktestConfig(fill="book")),
        ):
            results.append(result)
            names.append(name)
    return results, names


def test_html_report_names_strategy_coin_venue_engine_and_scenario(day_results) -> None:
    results, names = day_results
    page = html_report(
        results, title="kimp backtest 2024-03-01 (normal)", strategies=names, index_href="../../index.html"
    )
    headings = re.findall(r"<h2 id='([^']+)'>([^<]+)</h2>", page)
    sections = [text for anchor, text in headings if anchor not in ("summary", "overview")]
    expected = [f"{n} · ETH bithumb · {r.engine} · normal" for r, n in zip(results, names, strict=True)]
    assert sections == expected and len(set(sections)) == 4  # no two sections read alike
    # the table of contents and the summary rows link to those sections
    for anchor, _ in headings:
        assert page.count(f"href='#{anchor}'") >= 1
    summary = page[page.index("<h2 id='summary'>") : page.index("<h2 id='overview'>")]
    assert summary.count("<tr>") == 1 + len(results) and "zscore_wide" in summary
    # one day's annualised ratios say what they are
    assert "sharpe<br><small>annualised from 1 day</small>" in summary
    assert "sharpe (annualised from 1 day)" in page
    # summary figure (small multiples) + equity and premium per result
    assert page.count("data:image/png;base64,") == 1 + 2 * len(results)
    assert "href='../../index.html'" in page


def test_range_index_links_every_day_and_scenario(day_results, tmp_path: Path) -> None:
    results, names = day_results
    rows = []
    for day in (date(2024, 3, 1), date(2024, 3, 2)):
        for scenario in ("normal", "flash_crash"):
            for r, n in zip(results, names, strict=True):
                rows.append(
                    {
                        "date": day,
                        "scenario": scenario,
                        "strategy": n,
                        "coin": r.coin,
                        "kr_venue": r.kr_venue,
                        "engine": r.engine,
                        "total_return": r.metrics["total_return"],
                        "max_drawdown": r.metrics["max_drawdown"],
                        "trades": r.trades.height,
                        "cost_total": r.costs["total"],
                    }
                )
    daily = pl.DataFrame(rows)
    for day in ("2024-03-01", "2024-03-02"):
        path = report_path(tmp_path, day, "normal")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<!doctype html>")
    index = write_index(tmp_path, daily)
    page = index.read_text()
    assert index == tmp_path / "index.html"
    links = re.findall(r"<a href='([^'#]+)'>report</a>", page)
    assert links == ["backtest/2024-03-01/normal.html", "backtest/2024-03-02/normal.html"]
    assert all((tmp_path / link).exists() for link in links)
    assert page.count("<em>no report</em>") == 2  # flash_crash was never written: said, not linked
    assert "kimp backtests 2024-03-01..2024-03-02" in page and "data:image/png;base64," in page
    assert "daily_sharpe" in page and "mean_sharpe" not in page

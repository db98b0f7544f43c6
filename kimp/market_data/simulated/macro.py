"""Daily macro closes in long format, stamped at each market's real close instant (DST-aware).

The values come from the anchor path (index i = the close on day i). All closes here fall on the same
UTC date as their local date, so partition D holds the closes of local trading day D (weekdays only;
holidays are not modelled).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from kimp.market_data.schemas import MACRO_SERIES
from kimp.market_data.simulated.anchors import anchor_path
from kimp.market_data.simulated.params import SimParams

# series -> (market time zone, local close time): KRX close 15:30 KST; Cboe VIX settles 16:15 ET; ICE
# DXY 17:00 ET; LBMA gold PM price 15:00 London; LBMA silver 12:00 London; Treasury yield curve 18:00 ET.
CLOSES: dict[str, tuple[str, time]] = {
    "kospi": ("Asia/Seoul", time(15, 30)),
    "kosdaq": ("Asia/Seoul", time(15, 30)),
    "vix": ("America/New_York", time(16, 15)),
    "dxy": ("America/New_York", time(17, 0)),
    "gold": ("Europe/London", time(15, 0)),
    "silver": ("Europe/London", time(12, 0)),
    "us2y": ("America/New_York", time(18, 0)),
    "us10y": ("America/New_York", time(18, 0)),
}
assert tuple(sorted(CLOSES)) == tuple(sorted(MACRO_SERIES))


def close_instant(series: str, day: date) -> datetime:
    """UTC instant of ``series``' close on local date ``day``."""
    zone, at = CLOSES[series]
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def macro_frame(seed: int, p: SimParams, i: int, day: date) -> pl.DataFrame:
    a = anchor_path(seed, p)
    rows: dict[str, list[object]] = {"ts": [], "series": [], "value": [], "published_at": []}
    if day.weekday() < 5:
        lag = timedelta(minutes=p.macro_publish_lag_min)
        for series in sorted(CLOSES):
            ts = close_instant(series, day)
            rows["ts"].append(ts)
            rows["series"].append(series)
            rows["value"].append(float(a.macro[series][i]))
            rows["published_at"].append(ts + lag)
    return pl.DataFrame(
        rows,
        schema={"ts": pl.Datetime("us", "UTC"), "series": pl.String, "value": pl.Float64,
                "published_at": pl.Datetime("us", "UTC")},
    )  # fmt: skip

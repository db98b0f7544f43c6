"""The real periods a research study runs on: which files, which Korean venue, which days and horizons.

A period names the files it reads relative to the real-data folder (``Settings.data_dir``, e.g.
``../shared/data/real``); :func:`kimp.research.data.period_inputs` reads them through the files source
(candles and USD/KRW) or, for the daily periods, from the ready-made daily premium file, because no
Binance daily candles exist in the shared data (see docs/research.md).

Horizons are in hours, 1 to 24 (kimp.models.base.WalkForwardConfig's range); a daily period allows only
24 h (one bar), an intraday 5-minute period any whole hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

Kind = Literal["candles", "daily_premium"]

_HOURLY_FILES = (
    "bithumb_binance_1h/bithumb_BTCKRW_1h.csv.gz",
    "bithumb_binance_1h/bithumb_ETHKRW_1h.csv.gz",
    "bithumb_binance_1h/binance_BTCUSDT_1h.csv.gz",
    "bithumb_binance_1h/binance_ETHUSDT_1h.csv.gz",
    "investing_daily/USDKRW_daily.csv",
)
_INTRADAY_FILES = (
    "upbit_binance_btc_2024_2025/upbit_BTCKRW_5m_chunked_20250528_20250823.csv.gz",
    "upbit_binance_btc_2024_2025/binance_BTCUSDT_5m_20250525_20250823.csv.gz",
    "investing_daily/USDKRW_daily.csv",
)
KIMPLOG = "kimplog_daily_premium/kimplog_daily_premium.csv"


@dataclass(frozen=True)
class Period:
    """One real period: ``start``..``end`` are the first and last PREDICTED days (inclusive, UTC); the
    training window and the features' look-back are read before ``start``."""

    name: str
    kind: Kind
    files: tuple[str, ...]
    kr_venue: str
    start: date
    end: date
    interval_s: int
    horizons_h: tuple[int, ...]
    window_days: int
    coins: tuple[str, ...] = ("BTC",)
    retrain_every_days: int = 7  # the models of a training day predict it and the days up to the next one
    description: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period {self.name}: end {self.end} is before start {self.start}")
        if self.kr_venue not in ("upbit", "bithumb"):
            raise ValueError(f"period {self.name}: kr_venue must be upbit or bithumb, got {self.kr_venue!r}")
        bad = [h for h in self.horizons_h if not 1 <= h <= 24 or h * 3600 % self.interval_s]
        if bad or not self.horizons_h:
            raise ValueError(
                f"period {self.name}: horizons {bad or '()'} h are not whole bars of {self.interval_s} s "
                "within 1..24 h"
            )

    def allows(self, hours: int) -> bool:
        return 1 <= hours <= 24 and hours * 3600 % self.interval_s == 0


PERIODS: dict[str, Period] = {
    p.name: p
    for p in (
        Period(
            name="hourly_2018_euphoria",
            kind="candles",
            files=_HOURLY_FILES,
            kr_venue="bithumb",
            start=date(2017, 12, 1),
            end=date(2018, 3, 31),
            interval_s=3600,
            horizons_h=(1, 4, 24),
            window_days=30,
            coins=("BTC", "ETH"),
            retrain_every_days=14,
            description="Bithumb vs Binance hourly, the 2018 premium peak",
        ),
        Period(
            name="hourly_2019_calm",
            kind="candles",
            files=_HOURLY_FILES,
            kr_venue="bithumb",
            # Bithumb's placeholder run (zero volume, stale price) lasts to 2019-01-29: premium null there.
            start=date(2019, 3, 1),
            end=date(2019, 12, 31),
            interval_s=3600,
            horizons_h=(1, 4, 24),
            window_days=30,
            coins=("BTC", "ETH"),
            retrain_every_days=28,
            description="Bithumb vs Binance hourly, a calm year",
        ),
        Period(
            name="daily_2021",
            kind="daily_premium",
            files=(KIMPLOG,),
            kr_venue="upbit",
            start=date(2021, 1, 1),
            end=date(2021, 12, 31),
            interval_s=86400,
            horizons_h=(24,),
            window_days=365,
            retrain_every_days=14,
            description="Upbit vs Bitstamp daily premium (kimplog)",
        ),
        Period(
            name="daily_2024_2025",
            kind="daily_premium",
            files=(KIMPLOG,),
            kr_venue="upbit",
            start=date(2024, 1, 1),
            end=date(2025, 12, 31),
            interval_s=86400,
            horizons_h=(24,),
            window_days=365,
            retrain_every_days=14,
            description="Upbit vs Bitstamp daily premium (kimplog)",
        ),
        Period(
            name="intraday_2025_5m",
            kind="candles",
            files=_INTRADAY_FILES,
            kr_venue="upbit",
            # Upbit 5m blocks start 2025-05-28; USD/KRW (investing) ends 2025-08-01. The window is 28 days so
            # that its validation and test spans (15% each) always hold one of the ~16.7 h blocks.
            start=date(2025, 6, 26),
            end=date(2025, 7, 31),
            interval_s=300,
            horizons_h=(1, 4),
            window_days=28,
            description="Upbit 5m (blocks of ~16.7 h every ~3.5 days) vs Binance 5m",
        ),
    )
}


def get(name: str) -> Period:
    try:
        return PERIODS[name]
    except KeyError:
        raise ValueError(f"unknown research period {name!r}: known are {', '.join(PERIODS)}") from None

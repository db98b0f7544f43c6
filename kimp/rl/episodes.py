"""Episodes: one market (a day, or a configured span, of one coin on one Korean venue) made ready for the
environment's kernel, and the result of playing it.

An :class:`Episode` holds the arrays the kernel reads (prepared by the backtest's own
:func:`kimp.backtest.result.prepare`: the same parameter vector, slippage references and input checks as
``run_vectorized``) and the static observation features (:mod:`kimp.rl.observation`), computed from the
episode's bars and the history before them. :meth:`Episode.result` turns a played episode into a
:class:`~kimp.backtest.BacktestResult` (engine ``rl-env``) built from the kernel's own records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kimp.backtest import kernel as BK
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import DAY_US, US, Market, market_from_tables
from kimp.backtest.result import BacktestResult, finish, prepare
from kimp.errors import MarketDataError
from kimp.rl import kernel as K
from kimp.rl.config import ActionKind, EnvConfig
from kimp.rl.observation import catalog_matrix, static_features


@dataclass(eq=False)
class Episode:
    """One market ready for the kernel: per-bar inputs, parameters and static features."""

    market: Market
    config: BacktestConfig
    ts: np.ndarray
    tradable: np.ndarray
    bars: np.ndarray  # (kernel.NB, n), rows C-contiguous
    feats: np.ndarray  # (n, F)
    params: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    @property
    def key(self) -> str:
        return f"{self.market.coin}/{self.market.kr_venue} {self.market.partition}"

    @staticmethod
    def build(
        market: Market,
        config: BacktestConfig,
        env: EnvConfig,
        *,
        history: Market | None = None,
        catalog: pl.DataFrame | None = None,
        catalog_stats: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Episode:
        """The episode of ``market`` under ``config``; ``history``: the bars before it (warm-up)."""
        zero = pl.DataFrame({"ts": market.ts_series(), "target": np.zeros(market.n)})
        prep = prepare(market, zero, config, trade_capacity=1, record_capacity=1)  # the backtest's checks
        bars = np.empty((K.NB, market.n))
        bars[K.B_KR] = market.kr_close
        bars[K.B_BN] = market.bn_close
        bars[K.B_CONV] = market.conv
        bars[K.B_KR_BUY] = prep.kr_ref_buy
        bars[K.B_KR_SELL] = prep.kr_ref_sell
        bars[K.B_BN_BUY] = prep.bn_ref_buy
        bars[K.B_BN_SELL] = prep.bn_ref_sell
        bars[K.B_KR_VOL] = market.kr_volume
        bars[K.B_BN_VOL] = market.bn_volume
        p = prep.params
        fees = abs(p[BK.P_W_KR]) * p[BK.P_FEE_KR_TAKER] + abs(p[BK.P_W_BN]) * p[BK.P_FEE_BN_TAKER]
        feats = static_features(market, history, env, catalog, catalog_stats, round_trip_cost=2.0 * fees)
        return Episode(
            market=market,
            config=config,
            ts=np.ascontiguousarray(market.ts, dtype=np.int64),
            tradable=np.ascontiguousarray(market.tradable, dtype=np.bool_),
            bars=bars,
            feats=feats,
            params=prep.params,
            notes=list(prep.notes),
        )

    def result(self, play: Play) -> BacktestResult:
        """The played episode as a backtest result (frames, costs and metrics from the kernel's records)."""
        n = self.n
        zero = pl.DataFrame({"ts": self.market.ts_series(), "target": play.targets})
        prep = prepare(self.market, zero, self.config, trade_capacity=1, record_capacity=1)
        prep.state = play.state
        prep.trades, prep.rejections, prep.transfers = play.trades, play.rejections, play.transfers
        pos = positions_from_trades(play.trades, n)
        notes = [*prep.notes, *(f"kill switch: {k}" for k in play.kill_report(self.market))]
        prep.notes = notes
        return finish(
            "rl-env",
            self.market,
            self.config,
            prep,
            equity=play.equity,
            positions=pos,
            n_trades=play.trades.shape[0],
            n_rejections=play.rejections.shape[0],
            n_transfers=play.transfers.shape[0],
        )


@dataclass(frozen=True, eq=False)
class Play:
    """What the kernel recorded over one episode (copies): the targets it sent to the backtest's rule
    after the guard rails, the equity marked after each decision, fills, rejections, transfers, kill
    switch trips (bar, reason, equity), the final state and the sum of rewards."""

    targets: np.ndarray
    equity: np.ndarray
    trades: np.ndarray
    rejections: np.ndarray
    transfers: np.ndarray
    kills: np.ndarray
    state: np.ndarray
    total_reward: float

    def kill_report(self, market: Market) -> list[str]:
        """One line per kill-switch trip: when, why, the equity then."""
        from datetime import UTC, datetime

        out = []
        for bar, reason, equity in self.kills:
            t = datetime.fromtimestamp((int(market.ts[int(bar)]) + market.interval_s * US) / US, tz=UTC)
            why = "max daily loss" if int(reason) == K.KILL_DAILY_LOSS else "max drawdown"
            out.append(f"{why} at {t.isoformat()}: equity {equity:,.0f} KRW, position flattened")
        return out


def positions_from_trades(trades: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Both legs' coins after each bar, accumulated fill by fill in booking order (the kernel's sums)."""
    out = np.zeros((2, n))
    pos = [0.0, 0.0]
    k = 0
    for i in range(n):
        while k < trades.shape[0] and int(trades[k, 1]) == i:
            leg = int(trades[k, 2])
            pos[leg] += trades[k, 3]
            k += 1
        out[0, i], out[1, i] = pos
    return out[0], out[1]


def env_params(env: EnvConfig, config: BacktestConfig, market: Market, action: ActionKind) -> np.ndarray:
    """The kernel's environment parameter vector (kimp.rl.kernel.Q_*)."""
    q = np.zeros(K.N_Q)
    q[K.Q_INTERVAL_US] = market.interval_s * US
    q[K.Q_FLAT_DAY_END] = 1.0 if config.flat_at_day_end else 0.0
    q[K.Q_VOL_WINDOW] = config.costs.impact.vol_window
    q[K.Q_ACTION_KIND] = K.ACTION_CONTINUOUS if action == "continuous" else K.ACTION_DISCRETE
    q[K.Q_STEP] = env.discrete_step
    q[K.Q_LEVELS] = env.discrete_levels
    q[K.Q_SCALE] = env.reward_scale
    q[K.Q_DSR_W] = env.dsr_weight
    q[K.Q_DSR_ETA] = env.dsr_eta
    q[K.Q_DSR_MIN_VAR] = env.dsr_min_std**2
    q[K.Q_DSR_CLIP] = env.dsr_clip
    q[K.Q_TURNOVER] = env.turnover_penalty
    q[K.Q_MAX_DAY_LOSS] = env.kill_switch.max_daily_loss or 0.0
    q[K.Q_MAX_DD] = env.kill_switch.max_drawdown or 0.0
    q[K.Q_OBS_CLIP] = env.obs_clip
    return q


# --- episodes from the project's tables ------------------------------------------------------------


def day_markets(
    premium: pl.DataFrame,
    candles: pl.DataFrame,
    orderbook: pl.DataFrame,
    *,
    coins: Sequence[str],
    kr_venue: str,
    config: BacktestConfig,
    end: object | None = None,
    span_days: int = 1,
) -> tuple[list[Market], list[str]]:
    """One market per span of ``span_days`` consecutive UTC days (one day by default) and coin, in time
    order, with the bars whose close is at or before ``end`` (a datetime; None: all). Spans that cannot
    be traded (no premium, a gap longer than the backtest allows, ...) are skipped and named in the
    returned notes."""
    if span_days < 1:
        raise ValueError(f"span_days must be >= 1, got {span_days}")
    markets: list[Market] = []
    notes: list[str] = []
    if premium.height == 0:
        return markets, ["no premium rows"]
    rows = premium.filter(pl.col("kr_venue") == kr_venue)
    if end is not None:
        interval = pl.duration(seconds=pl.col("interval_s"))
        rows = rows.filter(pl.col("ts") + interval <= end)
    days = sorted(set(rows["ts"].dt.date().to_list()))
    spans: list[list[object]] = []
    for day in days:  # consecutive days, at most span_days per span
        if spans and len(spans[-1]) < span_days and (day - spans[-1][-1]).days == 1:  # type: ignore[operator]
            spans[-1].append(day)
        else:
            spans.append([day])
    for coin in coins:
        for span in spans:
            part = rows.filter((pl.col("coin") == coin) & pl.col("ts").dt.date().is_in(span))
            label = str(span[0]) if len(span) == 1 else f"{span[0]}..{span[-1]}"
            if part.filter(pl.col(config.premium_column).is_not_null()).height == 0:
                notes.append(f"{coin}/{kr_venue} {label}: no premium to trade on")
                continue
            try:
                markets.append(
                    market_from_tables(part, candles, orderbook, coin=coin, kr_venue=kr_venue, config=config)
                )
            except MarketDataError as exc:
                notes.append(f"{coin}/{kr_venue} {label}: skipped ({exc.problem})")
    markets.sort(key=lambda m: (int(m.ts[0]), m.coin))
    return markets, notes


def previous_market(markets: Sequence[Market], market: Market) -> Market | None:
    """The market of the same coin and venue that ends on the UTC day before ``market`` starts (its
    warm-up history), if any."""
    first_day = int(market.ts[0]) // DAY_US
    for m in markets:
        same = m.coin == market.coin and m.kr_venue == market.kr_venue
        if same and m.ts[-1] < market.ts[0] and int(m.ts[-1]) // DAY_US == first_day - 1:
            return m
    return None


def catalog_stats(
    markets: Sequence[Market], catalog: pl.DataFrame | None, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std of the named catalog features over the training markets (stored with the agent and
    applied unchanged to every later episode)."""
    if not names:
        return None
    stacked = np.vstack([catalog_matrix(m, catalog, names) for m in markets])
    mean = np.nanmean(stacked, axis=0)
    sd = np.nanstd(stacked, axis=0)
    return np.nan_to_num(mean), np.nan_to_num(sd)


def build_episodes(
    markets: Sequence[Market],
    config: BacktestConfig,
    env: EnvConfig,
    *,
    catalog: pl.DataFrame | None = None,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    history: Sequence[Market] = (),
) -> list[Episode]:
    """An episode per market, each warmed up on the market of the previous day (from ``markets`` or
    ``history``) when there is one."""
    pool = [*history, *markets]
    return [
        Episode.build(m, config, env, history=previous_market(pool, m), catalog=catalog, catalog_stats=stats)
        for m in markets
    ]

"""What both engines share around their kernels: input preparation and the result they return."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kimp.backtest import kernel as K
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import Book, Market
from kimp.backtest.metrics import compute_metrics
from kimp.backtest.signals import target_array
from kimp.errors import MarketDataError

TRADE_COLUMNS = (
    "ts",
    "bar_ts",
    "venue",
    "side",
    "qty",
    "price",
    "notional",
    "fee",
    "slippage",
    "impact",
    "currency",
    "conv",
    "cost_krw",
    "liquidity",
)


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest's outcome. Money in KRW unless a column says otherwise.

    equity: ts (bar open), equity, position (signed coins of the primary leg: the Korean leg, or
      Binance in binance_only mode), kr_qty, bn_qty, target, premium.
    trades: one row per fill: ts (fill instant), bar_ts, venue, side, qty, price, notional, fee,
      slippage, impact (in the venue's quote currency), currency, conv, cost_krw, liquidity.
    transfers: ts, from_venue, to_venue, qty, fee (coins), arrives.
    rejections: documented capital/limit/inventory cuts: ts (decision instant, the bar close), bar_ts,
      requested, allowed (targets in [-1, 1] units), reason (capital_limit | inventory).
    costs: KRW by kind (fees, slippage, impact, funding (negative = received), transfer,
      fx_conversion) and total. metrics: see kimp.backtest.metrics (cost_<kind> included).
    """

    engine: str
    scenario: str
    coin: str
    kr_venue: str
    config: BacktestConfig
    equity: pl.DataFrame
    trades: pl.DataFrame
    transfers: pl.DataFrame
    rejections: list[dict[str, object]]
    metrics: dict[str, float]
    costs: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Prepared:
    """Kernel inputs, computed once per run the same way for both engines."""

    target: np.ndarray
    params: np.ndarray
    state: np.ndarray
    ts_close: np.ndarray
    day_end: np.ndarray
    kr_sigma: np.ndarray
    bn_sigma: np.ndarray
    kr_ref_buy: np.ndarray
    kr_ref_sell: np.ndarray
    bn_ref_buy: np.ndarray
    bn_ref_sell: np.ndarray
    trades: np.ndarray
    rejections: np.ndarray
    transfers: np.ndarray
    notes: list[str]


def _depth_at_bars(
    book: Book | None, close_ts: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Displayed L10 depth (coins) of the latest snapshot at or before each bar close: (ask, bid)."""
    if book is None or book.n == 0:
        return fallback, fallback
    at = np.searchsorted(book.ts, close_ts, side="right") - 1
    ask = np.nansum(book.ask_sz, axis=1)[np.maximum(at, 0)]
    bid = np.nansum(book.bid_sz, axis=1)[np.maximum(at, 0)]
    ask = np.where(at >= 0, ask, fallback)
    bid = np.where(at >= 0, bid, fallback)
    return ask, bid


def prepare(market: Market, signals: pl.DataFrame, cfg: BacktestConfig, *, trade_capacity: int) -> Prepared:
    if market.n == 0:
        raise MarketDataError(
            source="backtest",
            partition=market.partition,
            problem="the market has no bars",
            expected="at least one bar",
        )
    target = target_array(market, signals)
    notes: list[str] = []
    slip = cfg.costs.slippage
    needs_volume = (
        slip.kind in ("linear", "sqrt") and slip.reference == "volume"
    ) or cfg.costs.impact.coef > 0
    if needs_volume and cfg.fill == "bar":
        legs = [("kr", market.kr_volume)] if cfg.mode != "binance_only" else []
        legs += [("binance", market.bn_volume)] if cfg.mode != "kr_only" else []
        for name, vol in legs:
            missing = market.tradable & ~np.isfinite(vol)
            if missing.any():
                raise MarketDataError(
                    source="backtest",
                    partition=market.partition,
                    problem=f"{int(missing.sum())} tradable bars have no {name} volume, which the "
                    f"{slip.kind} slippage / impact model needs",
                    expected="candles with volume for every bar (or slippage kind fixed/none and impact coef 0)",
                    rows=market.ts_series().filter(pl.Series(missing)).head(10).to_frame(),
                )
    ts_close = market.ts_close
    kr_ref_buy = kr_ref_sell = market.kr_volume
    bn_ref_buy = bn_ref_sell = market.bn_volume
    if slip.reference == "depth":
        if market.kr_book is None or market.bn_book is None:
            notes.append(
                "slippage reference 'depth' needs order books; none for a leg, so its bar volume is used"
            )
        kr_ref_buy, kr_ref_sell = _depth_at_bars(market.kr_book, ts_close, market.kr_volume)
        bn_ref_buy, bn_ref_sell = _depth_at_bars(market.bn_book, ts_close, market.bn_volume)
    params = cfg.params(kr_venue=market.kr_venue, coin=market.coin, conv0=float(market.conv[0]))
    window = cfg.costs.impact.vol_window
    n = market.n
    return Prepared(
        target=target,
        params=params,
        state=K.init_state(params, float(market.kr_close[0]), float(market.bn_close[0])),
        ts_close=ts_close,
        day_end=market.day_end if cfg.flat_at_day_end else np.zeros(n, dtype=np.bool_),
        kr_sigma=K.rolling_sigma(market.kr_close, window),
        bn_sigma=K.rolling_sigma(market.bn_close, window),
        kr_ref_buy=np.ascontiguousarray(kr_ref_buy),
        kr_ref_sell=np.ascontiguousarray(kr_ref_sell),
        bn_ref_buy=np.ascontiguousarray(bn_ref_buy),
        bn_ref_sell=np.ascontiguousarray(bn_ref_sell),
        trades=np.empty((trade_capacity, K.TRADE_COLS)),
        rejections=np.empty((n + 16, K.REJECT_COLS)),
        transfers=np.empty((n + 16, K.TRANSFER_COLS)),
        notes=notes,
    )


def _utc(values: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, values.astype(np.int64)).cast(pl.Datetime("us", "UTC"))


def finish(
    engine: str,
    market: Market,
    cfg: BacktestConfig,
    prep: Prepared,
    *,
    equity: np.ndarray,
    pos_kr: np.ndarray,
    pos_bn: np.ndarray,
    n_trades: int,
    n_rejections: int,
    n_transfers: int,
) -> BacktestResult:
    S, P = prep.state, prep.params
    notes = list(prep.notes)
    if n_trades > prep.trades.shape[0]:
        notes.append(
            f"{n_trades - prep.trades.shape[0]} fills beyond the trade buffer are in the PnL but not listed"
        )
    tr = prep.trades[: min(n_trades, prep.trades.shape[0])]
    # Strings are made by polars from small codes: numpy string arrays would dominate a long run's time.
    leg = pl.col("_leg")
    trades = (
        pl.DataFrame(
            {
                "ts": _utc(tr[:, 0], "ts"),
                "bar_ts": _utc(market.ts[tr[:, 1].astype(np.int64)], "bar_ts"),
                "_leg": tr[:, 2],
                "_qty": tr[:, 3],
                "price": tr[:, 4],
                "fee": tr[:, 5],
                "slippage": tr[:, 6],
                "impact": tr[:, 7],
                "conv": tr[:, 8],
                "_maker": tr[:, 9],
            }
        )
        .with_columns(
            venue=pl.when(leg == 0).then(pl.lit(market.kr_venue)).otherwise(pl.lit("binance")),
            side=pl.when(pl.col("_qty") > 0).then(pl.lit("buy")).otherwise(pl.lit("sell")),
            qty=pl.col("_qty").abs(),
            notional=pl.col("_qty").abs() * pl.col("price"),
            currency=pl.when(leg == 0).then(pl.lit("KRW")).otherwise(pl.lit("USDT")),
            cost_krw=(pl.col("fee") + pl.col("slippage") + pl.col("impact"))
            * pl.when(leg == 0).then(1.0).otherwise(pl.col("conv")),
            liquidity=pl.when(pl.col("_maker") > 0).then(pl.lit("maker")).otherwise(pl.lit("taker")),
        )
        .select(TRADE_COLUMNS)
    )
    xf = prep.transfers[:n_transfers]
    transfers = pl.DataFrame(
        {
            "ts": _utc(xf[:, 0], "ts"),
            "_dest": xf[:, 2],
            "qty": xf[:, 3],
            "fee": xf[:, 4],
            "arrives": _utc(xf[:, 5], "arrives"),
        }
    ).select(
        "ts",
        from_venue=pl.when(pl.col("_dest") == 0).then(pl.lit("binance")).otherwise(pl.lit(market.kr_venue)),
        to_venue=pl.when(pl.col("_dest") == 0).then(pl.lit(market.kr_venue)).otherwise(pl.lit("binance")),
        qty="qty",
        fee="fee",
        arrives="arrives",
    )
    rj = prep.rejections[:n_rejections]
    rejections: list[dict[str, object]] = (
        pl.DataFrame(
            {
                "ts": _utc(rj[:, 0], "ts"),
                "bar_ts": _utc(market.ts[rj[:, 1].astype(np.int64)], "bar_ts"),
                "requested": rj[:, 2],
                "allowed": rj[:, 3],
                "_r": rj[:, 4],
            }
        )
        .select(
            "ts",
            "bar_ts",
            "requested",
            "allowed",
            reason=pl.when(pl.col("_r") == K.REASON_CAPITAL)
            .then(pl.lit("capital_limit"))
            .otherwise(pl.lit("inventory")),
        )
        .to_dicts()
    )
    pnl_bn = S[K.S_CASH_BN] + S[K.S_POS_BN] * market.bn_close[-1]
    costs = {kind: float(S[slot]) for kind, slot in K.COST_SLOTS.items()}
    costs["transfer"] = float(S[K.C_TRANSFER])
    costs["fx_conversion"] = float(P[K.P_FX_COST] * abs(pnl_bn) * market.conv[-1])
    costs["total"] = float(sum(costs.values()))
    position = pos_bn if cfg.mode == "binance_only" else pos_kr
    metrics = compute_metrics(
        equity,
        periods_per_year=market.periods_per_year,
        capital=float(P[K.P_CAP_TOTAL]),
        position=position,
        traded_notional=float(S[K.S_NOTIONAL]),
        costs=costs,
    )
    metrics["fills"] = float(n_trades)
    metrics["rejections"] = float(n_rejections)
    metrics["transfers"] = float(n_transfers)
    metrics["unfilled_qty"] = float(S[K.S_UNFILLED])
    eq = pl.DataFrame(
        {
            "ts": market.ts_series(),
            "equity": equity,
            "position": position,
            "kr_qty": pos_kr,
            "bn_qty": pos_bn,
            "target": prep.target,
            "premium": market.premium,
        }
    )
    return BacktestResult(
        engine=engine,
        scenario=market.scenario,
        coin=market.coin,
        kr_venue=market.kr_venue,
        config=cfg,
        equity=eq,
        trades=trades,
        transfers=transfers,
        rejections=rejections,
        metrics=metrics,
        costs=costs,
        notes=notes,
    )

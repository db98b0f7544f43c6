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

REASONS = {K.REASON_CAPITAL: "capital_limit", K.REASON_INVENTORY: "inventory"}


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest's outcome. Money in KRW unless a column says otherwise.

    equity: ts (bar open), equity, position (signed coins of the primary leg: the Korean leg, or
      Binance in binance_only mode), kr_qty, bn_qty, target, premium.
    trades: one row per fill: ts (fill instant), bar_ts, venue, side, qty, price, notional, fee,
      slippage, impact (in the venue's quote currency), currency, conv, cost_krw, liquidity.
    transfers: ts, from_venue, to_venue, qty, fee (coins), arrives.
    rejections: documented capital/limit/inventory cuts: ts, requested, allowed, reason.
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
    venue_names = np.array([market.kr_venue, "binance"])
    leg = tr[:, 2].astype(np.int64)
    qty = tr[:, 3]
    price = tr[:, 4]
    conv = tr[:, 8]
    krw = np.where(leg == 0, 1.0, conv)
    trades = pl.DataFrame(
        {
            "ts": _utc(tr[:, 0], "ts"),
            "bar_ts": pl.Series("bar_ts", market.ts[tr[:, 1].astype(np.int64)]).cast(
                pl.Datetime("us", "UTC")
            ),
            "venue": venue_names[leg],
            "side": np.where(qty > 0, "buy", "sell"),
            "qty": np.abs(qty),
            "price": price,
            "notional": np.abs(qty) * price,
            "fee": tr[:, 5],
            "slippage": tr[:, 6],
            "impact": tr[:, 7],
            "currency": np.where(leg == 0, "KRW", "USDT"),
            "conv": conv,
            "cost_krw": (tr[:, 5] + tr[:, 6] + tr[:, 7]) * krw,
            "liquidity": np.where(tr[:, 9] > 0, "maker", "taker"),
        }
    )
    xf = prep.transfers[:n_transfers]
    dest = xf[:, 2].astype(np.int64)
    transfers = pl.DataFrame(
        {
            "ts": _utc(xf[:, 0], "ts"),
            "from_venue": venue_names[1 - dest],
            "to_venue": venue_names[dest],
            "qty": xf[:, 3],
            "fee": xf[:, 4],
            "arrives": _utc(xf[:, 5], "arrives"),
        }
    )
    rj = prep.rejections[:n_rejections]
    rejections: list[dict[str, object]] = [
        {
            "ts": _utc(np.array([row[0]]), "ts")[0],
            "requested": float(row[2]),
            "allowed": float(row[3]),
            "reason": REASONS[int(row[4])],
        }
        for row in rj
    ]
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

"""What both engines share around their kernels: input preparation and the result they return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from kimp.backtest import kernel as K
from kimp.backtest.carry import ClosingState, check_start, closing_state, history
from kimp.backtest.config import BacktestConfig
from kimp.backtest.market import Book, Market
from kimp.backtest.metrics import compute_metrics, metrics_from_stats
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


Positions = tuple[np.ndarray, np.ndarray] | Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Records:
    """What a run leaves for its frames: copies of the kernel's records (the vectorized engine reuses
    its buffers) and the per-bar series, turned into frames on first access."""

    market: Market
    mode: str
    equity: np.ndarray
    positions: Positions  # (Korean leg, Binance leg) coins per bar, or a function that expands them
    target: np.ndarray
    trades: np.ndarray
    transfers: np.ndarray
    rejections: np.ndarray
    prior_bar_ts: np.ndarray  # bar open times of carried orders' fills (bar index -1 - k: entry k)


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest's outcome. Money in KRW unless a column says otherwise.

    metrics: see kimp.backtest.metrics (cost_<kind> included); costs: KRW by kind (fees, slippage,
      impact, funding (negative = received), transfer, fx_conversion) and total. Both are computed by
      the run, over its own bars: a run that continued from a closing state measures returns, drawdown
      and turnover against its opening equity (the previous run's last mark) and counts the costs it
      added (fx_conversion: the change of the provision on the Binance leg's PnL, negative when it
      shrank).
    closing: the state the run ended in; ``start=closing`` continues it (kimp.backtest.carry).
    The frames are built from the run's records on first access (a parameter sweep that
      reads only metrics never pays for them):
    equity: ts (bar open), equity, position (signed coins of the primary leg: the Korean leg, or
      Binance in binance_only mode), kr_qty, bn_qty, target, premium.
    trades: one row per fill: ts (fill instant), bar_ts, venue, side, qty, price, notional, fee,
      slippage, impact (in the venue's quote currency), currency, conv, cost_krw, liquidity.
    transfers: ts, from_venue, to_venue, qty, fee (coins), arrives.
    rejections: documented capital/limit/inventory cuts: ts (decision instant, the bar close), bar_ts,
      requested, allowed (targets in [-1, 1] units), reason (capital_limit | inventory).
    """

    engine: str
    scenario: str
    coin: str
    kr_venue: str
    config: BacktestConfig
    metrics: dict[str, float]
    costs: dict[str, float]
    records: Records = field(repr=False)
    closing: ClosingState = field(repr=False)
    notes: list[str] = field(default_factory=list)

    @cached_property
    def equity(self) -> pl.DataFrame:
        r = self.records
        pos_kr, pos_bn = r.positions() if callable(r.positions) else r.positions
        return pl.DataFrame(
            {
                "ts": r.market.ts_series(),
                "equity": r.equity,
                "position": pos_bn if r.mode == "binance_only" else pos_kr,
                "kr_qty": pos_kr,
                "bn_qty": pos_bn,
                "target": r.target,
                "premium": r.market.premium,
            }
        )

    @cached_property
    def trades(self) -> pl.DataFrame:
        return _trades_frame(self.records, self.records.trades)

    @cached_property
    def transfers(self) -> pl.DataFrame:
        xf = self.records.transfers
        kr_venue = self.records.market.kr_venue
        to_kr = xf[:, 2] == 0
        return pl.DataFrame(
            [
                _utc(xf[:, 0], "ts"),
                _pick("from_venue", to_kr, "binance", kr_venue),
                _pick("to_venue", to_kr, kr_venue, "binance"),
                pl.Series("qty", np.ascontiguousarray(xf[:, 3])),
                pl.Series("fee", np.ascontiguousarray(xf[:, 4])),
                _utc(xf[:, 5], "arrives"),
            ]
        )

    @cached_property
    def rejections(self) -> list[dict[str, object]]:
        rj = self.records.rejections
        return pl.DataFrame(
            [
                _utc(rj[:, 0], "ts"),
                _utc(_bar_ts(self.records, rj[:, 1]), "bar_ts"),
                pl.Series("requested", np.ascontiguousarray(rj[:, 2])),
                pl.Series("allowed", np.ascontiguousarray(rj[:, 3])),
                _pick("reason", rj[:, 4] == K.REASON_CAPITAL, "capital_limit", "inventory"),
            ]
        ).to_dicts()


def _bar_ts(records: Records, bar: np.ndarray) -> np.ndarray:
    """Bar open times of record bar indices; a negative index -1 - k is a carried order's bar (entry k
    of ``prior_bar_ts``): an order sent before the run started."""
    k = bar.astype(np.int64)
    ts = records.market.ts[np.maximum(k, 0)]
    if records.prior_bar_ts.size and (k < 0).any():
        ts = np.where(k >= 0, ts, records.prior_bar_ts[np.maximum(-1 - k, 0)])
    return ts


def _trades_frame(records: Records, tr: np.ndarray) -> pl.DataFrame:
    """The trades frame from the fill records. Eager construction only: string columns gathered from
    two-value Series by code (numpy string arrays would dominate a long run's time), numbers computed in
    NumPy with the same operations a polars expression would do (a lazy with_columns/select costs about
    a millisecond each: query planning, thread pool)."""
    market = records.market
    kr = tr[:, 2] == 0
    qty = tr[:, 3]
    price = np.ascontiguousarray(tr[:, 4])
    fee = np.ascontiguousarray(tr[:, 5])
    slippage = np.ascontiguousarray(tr[:, 6])
    impact = np.ascontiguousarray(tr[:, 7])
    conv = np.ascontiguousarray(tr[:, 8])
    abs_qty = np.abs(qty)
    return pl.DataFrame(
        [
            _utc(tr[:, 0], "ts"),
            _utc(_bar_ts(records, tr[:, 1]), "bar_ts"),
            _pick("venue", kr, market.kr_venue, "binance"),
            _pick("side", qty > 0, "buy", "sell"),
            pl.Series("qty", abs_qty),
            pl.Series("price", price),
            pl.Series("notional", abs_qty * price),
            pl.Series("fee", fee),
            pl.Series("slippage", slippage),
            pl.Series("impact", impact),
            _pick("currency", kr, "KRW", "USDT"),
            pl.Series("conv", conv),
            pl.Series("cost_krw", (fee + slippage + impact) * np.where(kr, 1.0, conv)),
            _pick("liquidity", tr[:, 9] > 0, "maker", "taker"),
        ]
    )


@dataclass(eq=False)
class Prepared:
    """Kernel inputs, computed once per run the same way for both engines.

    Per-bar series that the vectorized engine derives inside its pass (bar close times, day ends,
    rolling volatility) are not here: the event-driven engine builds them itself. A run that continues
    a closing state (``start``) starts from its state vector and capital reference, reads the impact
    window's past from ``kr_hist``/``bn_hist`` (the carried closes before the market's, ``hist`` of
    them) and looks for funding instants after the previous run's last close (``funding_from``).
    """

    target: np.ndarray
    params: np.ndarray
    state: np.ndarray
    start: ClosingState | None
    opening: float  # the equity the run starts from (metrics are measured against it)
    funding_from: int  # µs: funding instants strictly after this one are the run's
    kr_hist: np.ndarray
    bn_hist: np.ndarray
    hist: int
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


def fresh_buffer(name: str, rows: int, cols: int) -> np.ndarray:
    """A new record buffer (the default of :func:`prepare`'s ``alloc``)."""
    return np.empty((rows, cols))


def prepare(
    market: Market,
    signals: pl.DataFrame,
    cfg: BacktestConfig,
    *,
    trade_capacity: int,
    record_capacity: int | None = None,
    alloc: Callable[[str, int, int], np.ndarray] = fresh_buffer,
    start: ClosingState | None = None,
) -> Prepared:
    """The kernel inputs. Record buffers: ``trade_capacity`` fills, ``record_capacity`` (default: one
    per bar, all there can be) rejections and transfers, each from ``alloc(name, rows, columns)``. The
    kernels count records past a buffer's end without writing them. ``start``: the closing state to
    continue from (checked against this run: kimp.backtest.carry.check_start)."""
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
            if np.isfinite(vol.sum()):  # a finite sum: every volume is finite (the common case, fast)
                continue
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
    kr_ref_buy = kr_ref_sell = market.kr_volume
    bn_ref_buy = bn_ref_sell = market.bn_volume
    if slip.reference == "depth":
        if market.kr_book is None or market.bn_book is None:
            notes.append(
                "slippage reference 'depth' needs order books; none for a leg, so its bar volume is used"
            )
        ts_close = market.ts_close
        kr_ref_buy, kr_ref_sell = _depth_at_bars(market.kr_book, ts_close, market.kr_volume)
        bn_ref_buy, bn_ref_sell = _depth_at_bars(market.bn_book, ts_close, market.bn_volume)
    params = cfg.params(kr_venue=market.kr_venue, coin=market.coin, conv0=float(market.conv[0]))
    vol_window = cfg.costs.impact.vol_window
    if start is None:
        state = K.init_state(params, float(market.kr_close[0]), float(market.bn_close[0]))
        opening = float(params[K.P_CAP_TOTAL])
        funding_from = int(market.ts[0])
    else:
        params = check_start(start, market, params, vol_window)
        state = start.state.copy()
        opening = start.equity
        funding_from = start.last_close
        missing = (int(market.ts[0]) - start.last_open) // (market.interval_s * 1_000_000) - 1
        if missing > 0:
            notes.append(
                f"continued across {missing} missing bar(s) after the closing state's last bar: a continuous "
                "run would have marked them"
            )
    kr_hist, hist = history(start, market.kr_close, 0)
    bn_hist, _ = history(start, market.bn_close, 1)
    records = market.n + 16 if record_capacity is None else record_capacity
    return Prepared(
        target=target,
        params=params,
        state=state,
        start=start,
        opening=opening,
        funding_from=funding_from,
        kr_hist=kr_hist,
        bn_hist=bn_hist,
        hist=hist,
        kr_ref_buy=np.ascontiguousarray(kr_ref_buy),
        kr_ref_sell=np.ascontiguousarray(kr_ref_sell),
        bn_ref_buy=np.ascontiguousarray(bn_ref_buy),
        bn_ref_sell=np.ascontiguousarray(bn_ref_sell),
        trades=alloc("trades", trade_capacity, K.TRADE_COLS),
        rejections=alloc("rejections", records, K.REJECT_COLS),
        transfers=alloc("transfers", records, K.TRANSFER_COLS),
        notes=notes,
    )


def _utc(values: np.ndarray, name: str) -> pl.Series:
    return pl.Series(name, values.astype(np.int64)).cast(pl.Datetime("us", "UTC"))


def _pick(name: str, where: np.ndarray, yes: str, no: str) -> pl.Series:
    """A string column: ``yes`` where ``where`` else ``no`` (gathered, no per-row Python strings)."""
    return pl.Series(name, [no, yes])[where.astype(np.uint32)]  # eager gather (Series.gather plans a query)


def finish(
    engine: str,
    market: Market,
    cfg: BacktestConfig,
    prep: Prepared,
    *,
    equity: np.ndarray,
    positions: Positions,
    n_trades: int,
    n_rejections: int,
    n_transfers: int,
    closing: ClosingState | None = None,
    stats: tuple[float, float, float, float, float] | None = None,
    trips: np.ndarray | None = None,
    prior_bar_ts: np.ndarray | None = None,
) -> BacktestResult:
    """Costs, metrics and the records the frames are built from. ``stats`` and ``trips`` are the metric
    passes' outputs when the engine already computed them (see metrics.metrics_from_stats); without
    them the metrics come from the curve and ``positions`` (then a pair of arrays). Costs, traded
    notional and unfilled quantity are what this run added to the carried accumulators. ``closing``:
    the state the run ended in, when the engine carries more than the state vector (default: the state
    vector, the last mark and the last bar's conversion rate)."""
    S = prep.state
    if closing is None:
        closing = closing_state(
            engine,
            market,
            cfg.costs.impact.vol_window,
            prep.params,
            S,
            prep.start,
            equity=float(equity[-1]),
            conv=float(market.conv[-1]),
        )
    S0 = prep.start.state if prep.start is not None else np.zeros_like(S)
    notes = list(prep.notes)
    if n_trades > prep.trades.shape[0]:
        notes.append(
            f"{n_trades - prep.trades.shape[0]} fills beyond the trade buffer are in the PnL but not listed"
        )
    costs = {kind: float(S[slot] - S0[slot]) for kind, slot in K.COST_SLOTS.items()}
    costs["transfer"] = float(S[K.C_TRANSFER] - S0[K.C_TRANSFER])
    provision = closing.fx_provision()
    costs["fx_conversion"] = provision - prep.start.fx_provision() if prep.start is not None else provision
    costs["total"] = float(sum(costs.values()))
    notional = float(S[K.S_NOTIONAL] - S0[K.S_NOTIONAL])
    if stats is None or trips is None:
        pos_kr, pos_bn = positions() if callable(positions) else positions
        metrics = compute_metrics(
            equity,
            periods_per_year=market.periods_per_year,
            capital=prep.opening,
            position=pos_bn if cfg.mode == "binance_only" else pos_kr,
            traded_notional=notional,
            costs=costs,
        )
    else:
        metrics = metrics_from_stats(
            final_equity=float(equity[-1]),
            n=equity.shape[0],
            capital=prep.opening,
            periods_per_year=market.periods_per_year,
            stats=stats,
            trips=trips,
            traded_notional=notional,
            costs=costs,
        )
    metrics["fills"] = float(n_trades)
    metrics["rejections"] = float(n_rejections)
    metrics["transfers"] = float(n_transfers)
    metrics["unfilled_qty"] = float(S[K.S_UNFILLED] - S0[K.S_UNFILLED])
    metrics["traded_notional"] = notional
    metrics["opening_equity"] = prep.opening
    # Copies of the records (np.array): the vectorized engine's buffers are reused by its next run.
    records = Records(
        market=market,
        mode=cfg.mode,
        equity=equity,
        positions=positions,
        target=prep.target,
        trades=np.array(prep.trades[: min(n_trades, prep.trades.shape[0])]),
        transfers=np.array(prep.transfers[: min(n_transfers, prep.transfers.shape[0])]),
        rejections=np.array(prep.rejections[: min(n_rejections, prep.rejections.shape[0])]),
        prior_bar_ts=np.zeros(0, dtype=np.int64) if prior_bar_ts is None else prior_bar_ts,
    )
    return BacktestResult(
        engine=engine,
        scenario=market.scenario,
        coin=market.coin,
        kr_venue=market.kr_venue,
        config=cfg,
        metrics=metrics,
        costs=costs,
        records=records,
        closing=closing,
        notes=notes,
    )

"""Where a backtest stopped, so that the next one continues from there (positions carry across days).

A run of either engine ends with a :class:`ClosingState`: the accounting state vector (positions, cash,
standing and transferred inventory, coins in flight, the last target, the cost accumulators), the
parameter vector it ran with (its capital reference was fixed at the first bar of the chain), the last
mark, the conversion rate and book mids the next events start from, the orders still working
(event-driven engine with books), and the last closes the impact model's volatility window reaches
back to. Passed as ``start=`` to the next run over the bars that follow, it makes

    run(day 1), then run(day 2, start=closing of day 1)  ==  run(day 1 + day 2)

fills, marks and costs bit for bit, for both engines (tests/test_backtest_carry.py), as long as the two
markets tile the continuous one (no bar of the continuous run missing from both). The strategies'
own state (z-score windows, holding counters) is carried by the signal functions (their ``state=``).

A state is checked against the run it starts: the same coin, venue and bar interval, bars strictly
after its last one, and the same parameters (fees, limits, costs...): a chain run with other settings
is not one continuous run, and says so instead of mixing them. It serialises to bytes (``to_bytes``)
exactly, for a daily partition to hand to the next.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from kimp.backtest import kernel as K
from kimp.backtest.market import US, Market

# Open orders of the event-driven engine: one row per live order.
OC_LEG, OC_REM, OC_LIMIT, OC_ACTIVE, OC_EXPIRE, OC_KIND, OC_RESTED, OC_BAR_TS = range(8)
ORDER_COLS = 8
VERSION = 1

# Parameter names, for an error that says what changed (indices of kernel.P_*).
_PARAM_NAMES = {
    getattr(K, name): name[2:].lower() for name in dir(K) if name.startswith("P_") and name != "P_CAP_TOTAL"
}


@dataclass(frozen=True, eq=False)
class ClosingState:
    """The state a run ended in (module docstring). Arrays are the run's own copies."""

    engine: str
    coin: str
    kr_venue: str
    interval_s: int
    last_open: int  # µs, open time of the last bar run
    bars: int  # bars run since the chain started flat
    vol_window: int
    params: np.ndarray  # the kernel's parameter vector (kernel.P_*)
    state: np.ndarray  # the kernel's state vector (kernel.S_*, C_*)
    equity: float  # the mark at the last bar's close: the next run's opening equity
    last_kr: float  # the last closes and conversion rate (what the next events start from)
    last_bn: float
    conv: float
    mid_kr: float  # the last book mids (NaN: no snapshot seen)
    mid_bn: float
    orders: np.ndarray  # (k, ORDER_COLS) orders still working (event-driven engine with books)
    kr_tail: np.ndarray  # the last closes (at most vol_window) of each leg: the impact window's past
    bn_tail: np.ndarray

    @property
    def last_close(self) -> int:
        return self.last_open + self.interval_s * US

    @property
    def flat(self) -> bool:
        """No position on either leg and no working order."""
        return self.state[K.S_POS_KR] == 0 and self.state[K.S_POS_BN] == 0 and self.orders.shape[0] == 0

    def fx_provision(self) -> float:
        """The FX conversion cost of the Binance leg's PnL as marked at the close (KRW)."""
        pnl_bn = self.state[K.S_CASH_BN] + self.state[K.S_POS_BN] * self.last_bn
        return float(self.params[K.P_FX_COST] * abs(pnl_bn) * self.conv)

    def to_bytes(self) -> bytes:
        """Exact serialisation (NumPy's .npz, no pickle)."""
        buf = io.BytesIO()
        scalars = np.array(
            [
                VERSION,
                self.interval_s,
                self.last_open,
                self.bars,
                self.vol_window,
            ],
            dtype=np.int64,
        )
        floats = np.array([self.equity, self.last_kr, self.last_bn, self.conv, self.mid_kr, self.mid_bn])
        np.savez(
            buf,
            names=np.array([self.engine, self.coin, self.kr_venue]),
            scalars=scalars,
            floats=floats,
            params=self.params,
            state=self.state,
            orders=self.orders.reshape(-1, ORDER_COLS),
            kr_tail=self.kr_tail,
            bn_tail=self.bn_tail,
        )
        return buf.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> ClosingState:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            version, interval_s, last_open, bars, vol_window = (int(x) for x in z["scalars"])
            if version != VERSION:
                raise ValueError(f"closing state version {version}, this kimp reads version {VERSION}")
            engine, coin, kr_venue = (str(x) for x in z["names"])
            equity, last_kr, last_bn, conv, mid_kr, mid_bn = (float(x) for x in z["floats"])
            return ClosingState(
                engine=engine,
                coin=coin,
                kr_venue=kr_venue,
                interval_s=interval_s,
                last_open=last_open,
                bars=bars,
                vol_window=vol_window,
                params=z["params"].copy(),
                state=z["state"].copy(),
                equity=equity,
                last_kr=last_kr,
                last_bn=last_bn,
                conv=conv,
                mid_kr=mid_kr,
                mid_bn=mid_bn,
                orders=z["orders"].copy(),
                kr_tail=z["kr_tail"].copy(),
                bn_tail=z["bn_tail"].copy(),
            )


def check_start(start: ClosingState, market: Market, params: np.ndarray, vol_window: int) -> np.ndarray:
    """The parameter vector of a run that continues ``start`` on ``market``: ``params`` with the chain's
    capital reference; refuses a state that does not belong to this run (ValueError naming why)."""
    where = f"continuing from the closing state of {start.coin} on {start.kr_venue} at bar {start.last_open}"
    if (start.coin, start.kr_venue, start.interval_s) != (market.coin, market.kr_venue, market.interval_s):
        raise ValueError(
            f"{where}: the state is of {start.coin}/{start.kr_venue} {start.interval_s} s bars, the market of "
            f"{market.coin}/{market.kr_venue} {market.interval_s} s bars ({market.partition})"
        )
    if market.ts[0] <= start.last_open:
        raise ValueError(
            f"{where}: the market ({market.partition}) starts at {int(market.ts[0])}, not after the state's "
            "last bar (a run continues with the bars that follow)"
        )
    changed = [
        f"{_PARAM_NAMES.get(k, k)} {start.params[k]!r} -> {params[k]!r}"
        for k in range(K.N_PARAMS)
        if k != K.P_CAP_TOTAL and start.params[k] != params[k]
    ]
    if vol_window != start.vol_window:
        changed.append(f"impact vol_window {start.vol_window} -> {vol_window}")
    if changed:
        raise ValueError(
            f"{where}: the state was made with other backtest parameters ({'; '.join(changed)}); a chain "
            "runs with one configuration: start again from a flat day"
        )
    out = params.copy()
    out[K.P_CAP_TOTAL] = start.params[K.P_CAP_TOTAL]
    return out


def history(start: ClosingState | None, close: np.ndarray, leg: int) -> tuple[np.ndarray, int]:
    """The close array the impact window reads (the carried closes, then the market's) and the number
    of carried bars before the market's bar 0."""
    if start is None:
        return close, 0
    tail = start.kr_tail if leg == 0 else start.bn_tail
    return np.ascontiguousarray(np.concatenate([tail, close])), int(tail.shape[0])


def closing_state(
    engine: str,
    market: Market,
    vol_window: int,
    params: np.ndarray,
    state: np.ndarray,
    start: ClosingState | None,
    *,
    equity: float,
    conv: float,
    mids: tuple[float, float] = (np.nan, np.nan),
    orders: np.ndarray | None = None,
) -> ClosingState:
    """The state a run over ``market`` ended in (copies of the kernel's vectors)."""
    kr_hist, _ = history(start, market.kr_close, 0)
    bn_hist, _ = history(start, market.bn_close, 1)
    return ClosingState(
        engine=engine,
        coin=market.coin,
        kr_venue=market.kr_venue,
        interval_s=market.interval_s,
        last_open=int(market.ts[-1]),
        bars=(start.bars if start is not None else 0) + market.n,
        vol_window=vol_window,
        params=params.copy(),
        state=state.copy(),
        equity=float(equity),
        last_kr=float(market.kr_close[-1]),
        last_bn=float(market.bn_close[-1]),
        conv=float(conv),
        mid_kr=float(mids[0]),
        mid_bn=float(mids[1]),
        orders=np.zeros((0, ORDER_COLS)) if orders is None else orders.copy(),
        kr_tail=kr_hist[-vol_window:].copy(),
        bn_tail=bn_hist[-vol_window:].copy(),
    )

"""Validated, frozen configs of a backtest: capital, limits, fills and every cost model.

Each model documents its assumptions next to its fields (and in docs/backtesting.md). Configs are frozen
and checked in ``__post_init__`` so that a bad value fails before any bar is simulated, and so that a
config can key a cache or a Dagster run tag. ``BacktestConfig.params()`` flattens everything into one
float64 vector: the numba kernels of both engines read the same vector, which is half of the parity
guarantee (the other half is that they call the same accounting functions, :mod:`kimp.backtest.kernel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kimp.backtest import kernel as K

Mode = Literal["spread", "kr_only", "binance_only"]
Hedge = Literal["spot", "perp"]
Fill = Literal["bar", "book"]
OrderType = Literal["market", "limit", "ioc"]
SlippageKind = Literal["none", "fixed", "linear", "sqrt"]


def _fraction(name: str, value: float, hi: float = 0.1) -> None:
    if not (0.0 <= value < hi) or math.isnan(value):
        raise ValueError(f"{name} is a fraction in [0, {hi}) (0.001 = 0.1%), got {value}")


@dataclass(frozen=True)
class VenueFees:
    """Maker and taker fee rates of one venue, as fractions of traded notional, charged per fill.

    Assumptions: base tier, no rebates, fees paid in the quote currency (KRW on Korean venues, USDT on
    Binance); bar-level fills and market/IOC orders pay taker, a resting limit order that fills later
    pays maker.
    """

    maker: float
    taker: float

    def __post_init__(self) -> None:
        _fraction("maker fee", self.maker)
        _fraction("taker fee", self.taker)


@dataclass(frozen=True)
class SlippageModel:
    """Price concession per fill, a fraction of the reference price (bar close, or book mid).

    - ``none``: 0.
    - ``fixed``: ``fixed_bps / 1e4`` (half the quoted spread, crossing cost).
    - ``linear``: ``fixed_bps / 1e4 + coef * q / R``.
    - ``sqrt``: ``fixed_bps / 1e4 + coef * sqrt(q / R)`` (the square-root law of order size).
    ``q`` is the order size in coins, ``R`` the reference size: the bar's traded volume
    (``reference="volume"``) or the displayed L10 depth on the side the order takes
    (``reference="depth"``, needs order books; without them the bar volume is used, documented).
    Assumption: slippage is temporary, it does not move later prices. Only bar-level fills use it; a
    book fill's slippage is measured, the walk through the book against its mid.
    """

    kind: SlippageKind = "sqrt"
    fixed_bps: float = 0.5
    coef: float = 0.001  # 10 bp for an order as large as the bar's whole volume
    reference: Literal["volume", "depth"] = "volume"

    def __post_init__(self) -> None:
        if self.kind not in ("none", "fixed", "linear", "sqrt"):
            raise ValueError(f"slippage kind must be none, fixed, linear or sqrt, got {self.kind!r}")
        if self.reference not in ("volume", "depth"):
            raise ValueError(f"slippage reference must be volume or depth, got {self.reference!r}")
        if not (0 <= self.fixed_bps < 1000) or not (0 <= self.coef < 10):
            raise ValueError(f"slippage fixed_bps in [0, 1000) and coef in [0, 10), got {self}")


@dataclass(frozen=True)
class ImpactModel:
    """Volatility-scaled market impact (Almgren style): ``coef * sigma * sqrt(q / V)`` of the price.

    ``sigma`` is the sample standard deviation of the leg's simple 1-bar returns over the last
    ``vol_window`` bars (only bars known at the decision; :func:`kernel.window_sigma`), ``V`` the bar
    volume. Assumption: temporary
    impact paid on the fill, no permanent shift of later prices. Applied to bar-level fills only (walking
    the L10 book already is the impact of a book fill).
    """

    coef: float = 0.5
    vol_window: int = 60

    def __post_init__(self) -> None:
        if not 0 <= self.coef < 10 or self.vol_window < 2:
            raise ValueError(f"impact coef in [0, 10) and vol_window >= 2, got {self}")


@dataclass(frozen=True)
class FxConversionModel:
    """Cost of converting the Binance leg's USDT profit or loss into KRW, the accounting currency.

    The leg's running PnL is marked at the bar's conversion rate (USD/KRW for ``premium_fx``, Upbit
    USDT/KRW for ``premium_usdt``) less ``cost`` of its absolute value: the spread paid to bring it home
    at the end of the day. Assumption: the idle USDT capital itself is not converted (its FX risk is not
    the strategy's), only the day's PnL.
    """

    cost: float = 0.001

    def __post_init__(self) -> None:
        _fraction("fx conversion cost", self.cost)


@dataclass(frozen=True)
class FundingModel:
    """Funding of a perpetual hedge leg (``BacktestConfig.hedge="perp"``).

    Every ``interval_s`` seconds (aligned to 00:00 UTC: 00, 08, 16 h) the holder of a long perp pays
    ``rate x position notional`` (at the latest Binance close) to the shorts; a short receives it, so the
    ``funding`` cost is signed (negative = received). Assumption: a constant rate (0.01% per 8 h, the
    common default); positions are those held just before the funding instant.
    """

    rate: float = 0.0001
    interval_s: int = 8 * 3600

    def __post_init__(self) -> None:
        if not -0.01 < self.rate < 0.01 or self.interval_s < 60:
            raise ValueError(f"funding rate in (-1%, 1%) per period and interval_s >= 60, got {self}")


@dataclass(frozen=True)
class TransferModel:
    """Moving coins between venues to rebalance inventory.

    A sell on a venue can use only the coins held there (Korean spot venues cannot short). When a
    target needs more, the order is cut to the inventory (a recorded rejection) and the shortfall is
    withdrawn from the other venue: it lands after ``delay_s`` (confirmations) minus ``fee`` coins
    (the withdrawal fee, charged as the ``transfer`` cost at the Binance price). One transfer in flight
    at a time. Assumption: the standing inventory is hedged outside this book, so it limits sells but
    its price risk is not in the PnL.
    """

    delay_s: int = 1800
    fee_btc: float = 0.0005
    fee_eth: float = 0.005

    def fee(self, coin: str) -> float:
        return {"BTC": self.fee_btc, "ETH": self.fee_eth}.get(coin, self.fee_eth)

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.fee_btc < 0 or self.fee_eth < 0:
            raise ValueError(f"transfer delay and fees must be >= 0, got {self}")


@dataclass(frozen=True)
class CostConfig:
    """All cost models together. Defaults: the public base-tier schedules (see docs/backtesting.md).

    Bithumb's fee is 0.04% to 0.25% depending on coupons; the default is the un-couponed 0.25% (the
    conservative end), so a strategy that only pays with coupons has to say so.
    """

    upbit: VenueFees = VenueFees(0.0005, 0.0005)
    bithumb: VenueFees = VenueFees(0.0025, 0.0025)
    binance_spot: VenueFees = VenueFees(0.001, 0.001)
    binance_perp: VenueFees = VenueFees(0.0002, 0.0005)
    slippage: SlippageModel = SlippageModel()
    impact: ImpactModel = ImpactModel()
    fx: FxConversionModel = FxConversionModel()
    funding: FundingModel = FundingModel()
    transfer: TransferModel = TransferModel()

    def kr_fees(self, venue: str) -> VenueFees:
        if venue not in ("upbit", "bithumb"):
            raise ValueError(f"kr_venue must be upbit or bithumb, got {venue!r}")
        return self.upbit if venue == "upbit" else self.bithumb

    @staticmethod
    def free() -> CostConfig:
        """No costs at all (for tests and for separating alpha from costs)."""
        zero = VenueFees(0.0, 0.0)
        return CostConfig(
            upbit=zero,
            bithumb=zero,
            binance_spot=zero,
            binance_perp=zero,
            slippage=SlippageModel(kind="none", fixed_bps=0.0, coef=0.0),
            impact=ImpactModel(coef=0.0),
            fx=FxConversionModel(0.0),
            funding=FundingModel(rate=0.0),
            transfer=TransferModel(delay_s=0, fee_btc=0.0, fee_eth=0.0),
        )


@dataclass(frozen=True)
class BacktestConfig:
    """One backtest: what is traded, with how much, how orders fill, and what it costs.

    Sizing: a target ``s`` in [-1, 1] means ``s x base`` KRW of notional per leg, where ``base`` is the
    smaller of the two venues' capitals (KRW, and USDT at the bar's conversion rate) in ``spread`` mode,
    or the traded venue's capital in a single-venue mode. ``s > 0`` is long the premium (long the Korean
    leg, short the Binance leg); ``s < 0`` short it. Each venue's position is limited to
    ``max_position_fraction`` of that venue's capital; a target above the limit is cut and recorded as a
    rejection. With ``flat_at_day_end`` (this config's default) a run closes out at the last bar of every
    UTC day; the daily ``backtest_report`` runs with ``False`` and continues each day from the previous
    day's closing state (``KIMP_BT_CARRY``; kimp.backtest.daily), unless told to close every day flat.
    """

    capital_krw: float = 100_000_000.0
    capital_usdt: float = 75_000.0
    mode: Mode = "spread"
    hedge: Hedge = "spot"
    max_position_fraction: float = 1.0
    # Standing coin inventory per venue as a fraction of its capital at the first price: 1.25 lets a full
    # target sell without a transfer unless the price rises 25% within the run.
    inventory_fraction: float = 1.25
    rebalance_threshold: float = 0.02  # ignore target changes below this fraction of base (no churn)
    premium_column: Literal["premium_fx", "premium_usdt"] = "premium_fx"
    fill: Fill = "bar"
    order_type: OrderType = "market"
    latency_ms: int = 200
    limit_offset_bps: float = 0.0  # limit price = mid x (1 + side x offset); > 0 is marketable
    limit_ttl_s: int = 300
    max_gap_bars: int = 5  # missing bars up to this many are forward-filled (not traded); longer: error
    flat_at_day_end: bool = True
    costs: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self) -> None:
        if not (self.capital_krw > 0 and self.capital_usdt > 0):
            raise ValueError(
                f"capital_krw and capital_usdt must be > 0, got {self.capital_krw}, {self.capital_usdt}"
            )
        if self.mode not in ("spread", "kr_only", "binance_only"):
            raise ValueError(f"mode must be spread, kr_only or binance_only, got {self.mode!r}")
        if self.hedge not in ("spot", "perp"):
            raise ValueError(f"hedge must be spot or perp, got {self.hedge!r}")
        if not 0 < self.max_position_fraction <= 1:
            raise ValueError(f"max_position_fraction must be in (0, 1], got {self.max_position_fraction}")
        if not 0 <= self.inventory_fraction <= 10:
            raise ValueError(f"inventory_fraction must be in [0, 10], got {self.inventory_fraction}")
        if not 0 <= self.rebalance_threshold < 1:
            raise ValueError(f"rebalance_threshold must be in [0, 1), got {self.rebalance_threshold}")
        if self.premium_column not in ("premium_fx", "premium_usdt"):
            raise ValueError(
                f"premium_column must be premium_fx or premium_usdt, got {self.premium_column!r}"
            )
        if self.fill not in ("bar", "book"):
            raise ValueError(f"fill must be bar or book, got {self.fill!r}")
        if self.order_type not in ("market", "limit", "ioc"):
            raise ValueError(f"order_type must be market, limit or ioc, got {self.order_type!r}")
        if self.latency_ms < 0 or self.limit_ttl_s <= 0 or self.max_gap_bars < 0:
            raise ValueError("latency_ms >= 0, limit_ttl_s > 0 and max_gap_bars >= 0 are required")
        if not -1000 < self.limit_offset_bps < 1000:
            raise ValueError(f"limit_offset_bps must be in (-1000, 1000), got {self.limit_offset_bps}")

    @property
    def conversion_column(self) -> str:
        """KRW per USD(T) used to value the Binance leg: the rate the premium definition itself uses."""
        return "usdkrw" if self.premium_column == "premium_fx" else "usdt_krw_close"

    def params(self, *, kr_venue: str, coin: str, conv0: float) -> np.ndarray:
        """The flat float64 parameter vector both numba engines read (indices in kernel.P_*)."""
        c = self.costs
        kr = c.kr_fees(kr_venue)
        bn = c.binance_perp if self.hedge == "perp" else c.binance_spot
        w_kr, w_bn = {"spread": (1.0, -1.0), "kr_only": (1.0, 0.0), "binance_only": (0.0, 1.0)}[self.mode]
        p = np.zeros(K.N_PARAMS)
        p[K.P_CAP_KRW] = self.capital_krw
        p[K.P_CAP_USDT] = self.capital_usdt
        p[K.P_CAP_TOTAL] = self.capital_krw + self.capital_usdt * conv0
        p[K.P_MAX_FRAC] = self.max_position_fraction
        p[K.P_INV_FRAC] = self.inventory_fraction
        p[K.P_REBAL] = self.rebalance_threshold
        p[K.P_W_KR], p[K.P_W_BN] = w_kr, w_bn
        p[K.P_PERP] = 1.0 if self.hedge == "perp" else 0.0
        p[K.P_FEE_KR_MAKER], p[K.P_FEE_KR_TAKER] = kr.maker, kr.taker
        p[K.P_FEE_BN_MAKER], p[K.P_FEE_BN_TAKER] = bn.maker, bn.taker
        p[K.P_SLIP_KIND] = {"none": 0, "fixed": 1, "linear": 2, "sqrt": 3}[c.slippage.kind]
        p[K.P_SLIP_FIXED] = 0.0 if c.slippage.kind == "none" else c.slippage.fixed_bps / 1e4
        p[K.P_SLIP_COEF] = c.slippage.coef
        p[K.P_IMPACT_COEF] = c.impact.coef
        p[K.P_FX_COST] = c.fx.cost
        p[K.P_FUNDING_RATE] = c.funding.rate
        p[K.P_FUNDING_US] = c.funding.interval_s * 1e6
        p[K.P_TRANSFER_US] = c.transfer.delay_s * 1e6
        p[K.P_TRANSFER_FEE] = c.transfer.fee(coin)
        p[K.P_LATENCY_US] = self.latency_ms * 1e3
        p[K.P_ORDER_TYPE] = {"market": 0, "limit": 1, "ioc": 2}[self.order_type]
        p[K.P_LIMIT_OFFSET] = self.limit_offset_bps / 1e4
        p[K.P_LIMIT_TTL_US] = self.limit_ttl_s * 1e6
        p[K.P_FLAT_DAY_END] = 1.0 if self.flat_at_day_end else 0.0
        return p

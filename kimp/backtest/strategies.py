"""The strategy registry: one :class:`Strategy` per way of turning a day's market into target positions.

A strategy is one module plus one registration. The module holds a signal function; the registration
is one ``register(Strategy(...))`` call, either in the built-in list at the end of this file or in the
strategy's own module named in ``Settings.plugins`` (KIMP_PLUGINS). The daily backtest
(:func:`kimp.backtest.daily.backtest_day`), the ``backtest_report`` asset, ``kimp backtest --strategy``
and the settings' validation all read this registry.

Three families:

- rules registered here (``zscore``, the baseline that fades premium z-scores);
- model predictions, one strategy per direction model of :mod:`kimp.models.registry` and ``ensemble``,
  generated from that registry (a model registered there is a strategy here without another line);
- the reinforcement-learning agents (``ppo``, ``dqn``: the agent of day D acting on D, and ``rl``: of
  the day's agents, the one with the best validation Sharpe), generated from :data:`kimp.rl.config.AGENTS`.

The contract of a spec's ``signals`` function:
``signals(day: StrategyDay, params, state: np.ndarray | None) -> StrategySignals``. ``day`` holds what is
known for the day (its market under the scenario, the warm-up bars before it, the day's predictions and
agent cards); ``params`` is an instance of the spec's ``params`` dataclass (its defaults, overridden by
``BacktestSettings.params[name]``); ``state`` is the rule's own state at the end of the previous day
(None: the chain starts here) and the function returns the state it ends the day in, which the next day
receives: a rule continued day by day is one rule over the days, bit for bit. A strategy with nothing
to act on for the day (no predictions of its model, no agent) returns ``signals=None`` and says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from kimp.backtest.market import Market
from kimp.models.registry import resolve_ref

KINDS: tuple[str, ...] = ("rule", "model", "agent")
# A z-score over n samples cannot exceed (n - 1) / sqrt(n): fewer than ~24 bars could never reach the
# entry threshold on hourly data, so the window is at least this many bars.
MIN_ZSCORE_BARS = 24


@dataclass(frozen=True, eq=False)
class StrategyDay:
    """What a strategy may read for day D: all of it known at the bar closes it acts on.

    ``market``: the day's market (one coin on one Korean venue, under the scenario); ``history``: the
    bars of the day before under the same scenario, when the previous day's backtest is stored (None
    otherwise: a chain starts here); ``predictions``: the day's out-of-sample ``predictions`` rows (may
    be empty); ``agents``: the day's agent cards by agent kind (``path``, ``val_sharpe``, ...)."""

    day: date
    market: Market
    history: Market | None = None
    predictions: pl.DataFrame = field(default_factory=pl.DataFrame)
    agents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StrategySignals:
    """A strategy's answer for one market and day: ``signals`` (ts, target, ...; None: nothing to act
    on, ``notes`` say why), the ``state`` to continue from the next day, and notes (kill switch, ...)."""

    signals: pl.DataFrame | None
    state: np.ndarray | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoParams:
    """A strategy without parameters."""


Ref = Callable[..., StrategySignals] | str


def _resolve(ref: Ref) -> Callable[..., StrategySignals]:
    return resolve_ref(ref)  # the model registry's "module:attribute" rule, one implementation


@dataclass(frozen=True)
class Strategy:
    """One registered strategy (module docstring for the contract of ``signals``).

    ``params``: a frozen dataclass type of its parameters, defaults included; ``kind``: rule, model or
    agent; ``needs``: the inputs it reads besides the market (``predictions``, ``agents``), so that the
    caller loads only what the configured strategies read."""

    name: str
    signals: Ref
    params: type = NoParams
    kind: str = "rule"
    needs: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"strategy name must be lower-case letters, digits and _, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if not dataclasses.is_dataclass(self.params):
            raise ValueError(f"{self.name}: params must be a dataclass type, got {self.params!r}")

    def make_params(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """The parameters: the spec's defaults with ``overrides`` (unknown names are an error)."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(self.params)}
        if unknown := set(overrides) - known:
            raise ValueError(
                f"strategy {self.name!r} has no parameter(s) {sorted(unknown)}; its parameters are "
                f"{sorted(known) or 'none'}"
            )
        return self.params(**overrides)

    def run(self, day: StrategyDay, params: Any, state: np.ndarray | None) -> StrategySignals:
        return _resolve(self.signals)(day, params, state)


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Add a strategy; registering a name twice is an error unless ``replace``."""
    if strategy.name in _REGISTRY and not replace and _REGISTRY[strategy.name] != strategy:
        raise ValueError(f"a strategy named {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


# --- z-score: the rule-based baseline ----------------------------------------------------------------


@dataclass(frozen=True)
class ZScoreParams:
    """Fade the premium's z-score over ``window_minutes`` (at least MIN_ZSCORE_BARS bars): enter at
    ``|z| > entry_z``, leave under ``exit_z``, sized ``size``."""

    window_minutes: int = 240
    entry_z: float = 2.0
    exit_z: float = 0.5
    size: float = 1.0

    def __post_init__(self) -> None:
        if self.window_minutes < 1 or not 0 <= self.exit_z < self.entry_z or not 0 < self.size <= 1:
            raise ValueError(
                f"zscore needs window_minutes >= 1, 0 <= exit_z < entry_z, 0 < size <= 1; got {self}"
            )


def zscore_strategy(day: StrategyDay, params: ZScoreParams, state: np.ndarray | None) -> StrategySignals:
    """The z-score rule. Its warm-up is the bars before the day: continued from the previous day's state
    (its window and position), or, when a chain starts, run over the day before's premium first when
    that day is known; otherwise it warms up on the day's first bars (no trade before the window is full).
    """
    from kimp.backtest.signals import zscore_signals, zscore_state

    market = day.market
    bars = max(MIN_ZSCORE_BARS, -(-params.window_minutes * 60 // market.interval_s))
    notes: list[str] = []
    if state is None or state.shape != (zscore_state(bars).shape[0],):
        if state is not None:
            notes.append(f"zscore {market.coin}/{market.kr_venue}: the window changed; warmed up afresh")
        state = zscore_state(bars)
        if day.history is not None and day.history.n:
            zscore_signals(
                day.history,
                window=bars,
                entry_z=params.entry_z,
                exit_z=params.exit_z,
                size=params.size,
                state=state,
            )
    else:
        state = state.copy()
    frame = zscore_signals(
        market, window=bars, entry_z=params.entry_z, exit_z=params.exit_z, size=params.size, state=state
    )
    return StrategySignals(frame, state, tuple(notes))


# --- model predictions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionParams:
    """The prediction rule (kimp.backtest.signals.prediction_signals): enter at an edge ``p_down - p_up``
    of ``threshold``, leave below ``exit_threshold`` (None: half the entry), hold at least
    ``hold_minutes`` (None: the predictions' horizon), sizes in steps of ``size_step``."""

    threshold: float = 0.1
    exit_threshold: float | None = None
    hold_minutes: int | None = None
    size_step: float = 0.25


def prediction_strategy(model: str) -> Callable[..., StrategySignals]:
    """The signal function trading ``model``'s predictions."""

    def signals(day: StrategyDay, params: PredictionParams, state: np.ndarray | None) -> StrategySignals:
        from kimp.backtest.signals import prediction_signals, prediction_state

        preds = day.predictions
        market = day.market
        if not preds.width or preds.filter(pl.col("model") == model).height == 0:
            return StrategySignals(None, state, (f"no predictions of {model} for {day.day}",))
        state = prediction_state() if state is None or state.shape != (2,) else state.copy()
        frame = prediction_signals(
            market,
            preds,
            model=model,
            threshold=params.threshold,
            exit_threshold=params.exit_threshold,
            hold_minutes=params.hold_minutes,
            size_step=params.size_step,
            state=state,
        )
        return StrategySignals(frame, state)

    signals.__name__ = f"{model}_predictions"
    return signals


def _model_strategy(name: str) -> Strategy:
    return Strategy(
        name=name,
        signals=prediction_strategy(name),
        params=PredictionParams,
        kind="model",
        needs=("predictions",),
        description=f"trades the {name} model's out-of-sample direction predictions of the day",
    )


def model_names() -> list[str]:
    """The model strategies: ``ensemble`` and every registered direction model (member or baseline)."""
    from kimp.models import registry as models

    return ["ensemble", *models.names(kind="direction")]


# --- reinforcement-learning agents ---------------------------------------------------------------------


def agent_strategy(kind: str) -> Callable[..., StrategySignals]:
    """The signal function of agent ``kind`` (``rl``: the day's agent with the best validation Sharpe)."""

    def signals(day: StrategyDay, params: NoParams, state: np.ndarray | None) -> StrategySignals:
        from kimp.rl.strategy import agent_signals, select_agent

        if kind == "rl":
            card = select_agent(list(day.agents.values()))
            if card is None:
                return StrategySignals(None, None, (f"no agent with a validation Sharpe for {day.day}",))
        else:
            card = day.agents.get(kind)
            if card is None:
                return StrategySignals(None, None, (f"no {kind} agent trained for {day.day}",))
        frame, notes = agent_signals(card["path"], day.market, history=day.history)
        if kind == "rl":
            notes = [
                f"rl chose {card.get('agent', '?')} (validation Sharpe {card['val_sharpe']:.3f})",
                *notes,
            ]
        return StrategySignals(frame, None, tuple(notes))

    signals.__name__ = f"{kind}_agent"
    return signals


def agent_names() -> list[str]:
    from kimp.rl.config import AGENTS

    return [*AGENTS, "rl"]


def _agent_spec(name: str) -> Strategy:
    what = (
        "of the day's agents, the one with the best validation Sharpe"
        if name == "rl"
        else f"the {name} agent"
    )
    return Strategy(
        name=name,
        signals=agent_strategy(name),
        kind="agent",
        needs=("agents",),
        description=f"{what} trained for day D (kimp.rl), acting on D",
    )


# --- lookup ---------------------------------------------------------------------------------------------


def get(name: str) -> Strategy:
    """The strategy named ``name``: registered here, else a model's or an agent's (module docstring)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in model_names():
        return _model_strategy(name)
    if name in agent_names():
        return _agent_spec(name)
    raise ValueError(f"unknown strategy {name!r}: strategies are {', '.join(names())}")


def names() -> list[str]:
    """Every strategy name: registered rules, then models, then agents."""
    out = list(_REGISTRY)
    for name in (*model_names(), *agent_names()):
        if name not in out:
            out.append(name)
    return out


def strategies(chosen: tuple[str, ...] | list[str]) -> list[Strategy]:
    """The specs of ``chosen`` (validated)."""
    return [get(name) for name in chosen]


register(
    Strategy(
        name="zscore",
        signals=zscore_strategy,
        params=ZScoreParams,
        description="fades the premium's rolling z-score (the rule-based baseline)",
    )
)

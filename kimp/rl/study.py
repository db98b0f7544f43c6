"""The agents' walk-forward study: PPO and DQN beside the z-score baseline and the ensemble, after all costs.

For every day D of the range and every agent kind, the agent of D is trained by
:func:`kimp.rl.walk_forward.train_day` on the window that ends at ``D 00:00 UTC - embargo``
(``Settings.rl``: window, embargo, steps and time budget; nothing tuned here), then acts on D
(:func:`~kimp.rl.walk_forward.act_day`, warmed up on D - 1). The four strategies then run through
``run_vectorized`` (bar fills, every cost of the default :class:`~kimp.backtest.BacktestConfig`) day after
day, each day continuing from the previous day's :class:`~kimp.backtest.ClosingState` (cash, inventories
and transfers in flight carry; positions are closed at each day's end by the default
``flat_at_day_end``), and their rule states carry too (the z-score window, the prediction rule's holding).

Everything runs in this process, by the functions the assets call (one Dagster run per day and stage cost
about two minutes each on the loaded shared machine): the raw tables from the configured source
(``KIMP_SOURCE``) and the premium by ``kimp.premium.compute_premium``; the ensemble's out-of-sample
predictions of each day by the domain walk-forward (``kimp.models.walk_forward.train_day`` /
``predict_day`` on ``kimp.features.build_features``; ``Settings.walk_forward``, default member
parameters, no Optuna study). Agents are saved under ``$KIMP_HOME/rl_study/<kind>/<day>/`` and the
predictions beside them, reused by a later run with the same settings (``--retrain`` redoes them); the
table goes to ``$KIMP_HOME/rl_study/results_<start>_<end>.{csv,md}``. Results: docs/rl.md.

    python -m kimp.rl.study --start 2018-03-01 --end 2018-03-14 --kr-venue bithumb
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kimp.backtest import BacktestConfig, compute_metrics, run_vectorized
from kimp.backtest import kernel as BK
from kimp.backtest.carry import ClosingState
from kimp.backtest.market import US, Market
from kimp.backtest.signals import prediction_signals, prediction_state, zscore_signals, zscore_state
from kimp.backtest.strategies import MIN_ZSCORE_BARS, PredictionParams, ZScoreParams
from kimp.rl.agents import Agent
from kimp.rl.config import AGENTS
from kimp.rl.episodes import day_markets, previous_market
from kimp.rl.walk_forward import RLWalkForward, TrainedDay, act_day, train_day
from kimp.settings import Settings

STRATEGIES = ("zscore", "ensemble", *AGENTS)
# The daily backtests' rule parameters: the registered strategies' defaults (kimp.backtest.strategies).
ZSCORE_MINUTES, ENTRY_Z, EXIT_Z = ZScoreParams().window_minutes, ZScoreParams().entry_z, ZScoreParams().exit_z
PRED_THRESHOLD, PRED_SIZE_STEP = PredictionParams().threshold, PredictionParams().size_step
COST_KINDS = ("fees", "slippage", "impact", "funding", "transfer", "fx_conversion", "total")


def load_tables(
    settings: Settings, first: date, last: date, kr_venues: Sequence[str], *, full: bool
) -> dict[str, pl.DataFrame]:
    """Candles of the Korean venues and Binance, USD/KRW and the premium (``kimp.premium.compute_premium``,
    as the ``kimchi_premium`` asset computes it) for ``first``..``last``; with ``full`` also the tables the
    features read (order books, on-chain, macro, news) where the source has them."""
    from kimp.market_data.source import build_source
    from kimp.premium import FX_LOOKBACK_DAYS, compute_premium

    src = build_source(
        settings.source,
        seed=settings.seed,
        data_dir=settings.data_dir,
        orderbook_interval_ms=settings.orderbook_interval_ms,
    )
    fx_days = days_between(first - timedelta(days=FX_LOOKBACK_DAYS), last)
    fx = {d: src.fx(d) for d in fx_days}
    premium, candles = [], []
    other: dict[str, list[pl.DataFrame]] = {"orderbook": [], "onchain": [], "macro": [], "news": []}
    for day in days_between(first, last):
        kr = {v: src.candles(v, day) for v in kr_venues}
        bn = src.candles("binance", day)
        window = [fx[day - timedelta(days=k)] for k in range(FX_LOOKBACK_DAYS, -1, -1)]
        premium.append(compute_premium(kr, bn, _concat(window), day=day))
        candles += [*kr.values(), bn]
        if full:
            for name, parts in other.items():
                if src.provides(name):  # type: ignore[arg-type]
                    parts.append(getattr(src, name)(day))
    return {
        "premium": _concat(premium),
        "candles": _concat(candles),
        "fx": _concat(list(fx.values())),
        **{name: _concat(parts) for name, parts in other.items()},
    }


def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    kept = [f for f in frames if f.height]
    return pl.concat(kept, how="vertical_relaxed") if kept else pl.DataFrame()


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


@dataclass
class Chain:
    """One strategy on one market (coin, venue), run day after day from the previous day's closing."""

    strategy: str
    coin: str
    kr_venue: str
    closing: ClosingState | None = None
    equity: list[np.ndarray] = field(default_factory=list)
    position: list[np.ndarray] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_KINDS, 0.0))
    trades: int = 0
    days: int = 0
    flat_days: list[str] = field(default_factory=list)  # days without signals (held flat), named
    notes: list[str] = field(default_factory=list)
    capital: float = float("nan")
    periods_per_year: float = float("nan")
    rule_state: np.ndarray | None = None

    def run(self, market: Market, signals: pl.DataFrame, config: BacktestConfig) -> None:
        start = self.closing
        if start is not None and int(market.ts[0]) <= start.last_open:
            raise ValueError(f"{self.strategy} {self.coin}/{self.kr_venue}: days out of order")
        result = run_vectorized(market, signals, config, start=start)
        self.closing = result.closing
        if self.days == 0:
            self.capital = float(result.closing.params[BK.P_CAP_TOTAL])
            self.periods_per_year = market.periods_per_year
        self.days += 1
        eq = result.equity
        self.equity.append(eq["equity"].to_numpy())
        self.position.append(eq["position"].to_numpy())
        for k in COST_KINDS:
            self.costs[k] += float(result.costs.get(k, 0.0))
        self.trades += result.trades.height
        self.notes += result.notes

    def metrics(self) -> dict[str, Any]:
        if not self.equity:
            return {}
        equity = np.concatenate(self.equity)
        m = compute_metrics(
            equity,
            periods_per_year=self.periods_per_year,
            capital=self.capital,
            position=np.concatenate(self.position),
        )
        return {
            "strategy": self.strategy,
            "coin": self.coin,
            "kr_venue": self.kr_venue,
            "days": self.days,
            "flat_days": len(self.flat_days),
            "total_return": m["total_return"],
            "sharpe": m["sharpe"],
            "max_drawdown": m["max_drawdown"],
            "trades": self.trades,
            "round_trips": m.get("round_trips", float("nan")),
            "cost_total_pct": self.costs["total"] / self.capital,
            **{f"cost_{k}": self.costs[k] for k in COST_KINDS},
            "capital": self.capital,
        }


def zscore_bars(interval_s: int) -> int:
    """The daily backtests' z-score window in bars (240 minutes, at least 24 bars)."""
    return max(MIN_ZSCORE_BARS, -(-ZSCORE_MINUTES * 60 // interval_s))


@dataclass
class Study:
    """Inputs and outputs of one run (module docstring)."""

    settings: Settings
    start: date
    end: date
    kr_venues: tuple[str, ...]
    coins: tuple[str, ...]
    agents: tuple[str, ...] = AGENTS
    retrain: bool = False
    with_ensemble: bool = True
    feature_warmup: bool = True
    cards: list[dict[str, Any]] = field(default_factory=list)
    _tables: dict[str, pl.DataFrame] | None = field(default=None, repr=False)

    @property
    def folder(self) -> Path:
        return self.settings.home / "rl_study"

    def walk_forward(self) -> RLWalkForward:
        return RLWalkForward.from_settings(self.settings.rl, coins=self.coins, kr_venues=self.kr_venues)

    def tables(self) -> dict[str, pl.DataFrame]:
        """The raw tables and the premium from the configured source, computed in this process by the
        functions the market-data and premium assets call: from the first day any consumer needs (the
        agents' window and warm-up day, the ensemble's window and the features' look-back) to the end."""
        if self._tables is None:
            first = self.walk_forward().data_days(self.start)[0]
            if self.with_ensemble:
                first = min(first, self.feature_start() - timedelta(days=self.feature_lookback()))
            self._tables = load_tables(
                self.settings, first, self.end, self.kr_venues, full=self.with_ensemble
            )
        return self._tables

    def data_key(self) -> dict[str, Any]:
        """What the saved agents and predictions were computed from (a change retrains them)."""
        s = self.settings
        return _jsonable(
            {"source": s.source, "data_dir": s.data_dir, "seed": s.seed, "orderbook_ms": s.orderbook_interval_ms,
             "kr_venues": self.kr_venues, "coins": self.coins, "feature_warmup": self.feature_warmup}
        )  # fmt: skip

    def feature_start(self) -> date:
        return self.start - timedelta(days=self.settings.walk_forward.window_days + 1)

    def feature_lookback(self) -> int:
        if not self.with_ensemble or not self.feature_warmup:
            return 0
        from kimp.features import lookback_days

        return max(lookback_days(self.settings.feature_config()).values())

    def predictions(self, tick: Callable[[str], None]) -> pl.DataFrame:
        """The ensemble's out-of-sample predictions of every day (kimp.models.walk_forward, the steps the
        model assets call): features over the window and the range, then for each day D the models
        trained on the window before D minus the embargo and D's predictions. Cached on disk."""
        path = self.folder / f"predictions_{self.start}_{self.end}.parquet"
        key = path.with_suffix(".json")
        want = {"data": self.data_key(), "walk_forward": _jsonable(asdict(self.settings.walk_forward))}
        if path.exists() and key.exists() and json.loads(key.read_text()) == want and not self.retrain:
            return pl.read_parquet(path)
        from kimp.features import FeatureInputs, build_features
        from kimp.models.walk_forward import predict_day
        from kimp.models.walk_forward import train_day as train_models
        from kimp.timeutil import day_start

        t = self.tables()
        wf = self.settings.walk_forward
        tick("features")
        inputs = FeatureInputs(**{name: (t.get(name) if t.get(name) is not None and t[name].height else None)
                                  for name in ("premium", "candles", "fx", "orderbook", "onchain", "macro", "news")})  # fmt: skip
        features = build_features(
            inputs,
            start=day_start(self.feature_start()),
            end=day_start(self.end + timedelta(days=1)),
            config=self.settings.feature_config(),
        ).frame
        premium = t["premium"]
        out = []
        for day in days_between(self.start, self.end):
            tick(f"ensemble {day}")
            lo, hi = day_start(day), day_start(day + timedelta(days=1))
            models = train_models(
                features.filter(pl.col("ts") < lo), premium.filter(pl.col("ts") < lo), day=day, config=wf
            )
            out.append(
                predict_day(
                    models,
                    features.filter(pl.col("ts") < hi),
                    premium.filter(pl.col("ts") < hi),
                    day=day,
                    config=wf,
                )
            )
        frame = pl.concat(out, how="vertical_relaxed")
        self.folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        key.write_text(json.dumps(want))
        return frame

    def agent(
        self, day: date, kind: str, tables: dict[str, pl.DataFrame], tick: Callable[[int, int], None]
    ) -> Agent:
        """The agent of ``day``: loaded when this study saved one with the same settings, else trained."""
        path = self.folder / kind / day.isoformat()
        wf = self.walk_forward()
        acfg = self.settings.rl.agent(kind, self.settings.seed)
        want = {
            "data": self.data_key(),
            "walk_forward": _jsonable(asdict(wf)),
            "agent": _jsonable(asdict(acfg)),
        }
        card_file = path / "study_card.json"
        if not self.retrain and card_file.exists():
            saved = json.loads(card_file.read_text())
            if saved.get("settings") == want:
                self.cards.append(saved["card"])
                return Agent.load(path)
        # Only the data known before the cutoff goes in (train_day also cuts and asserts it).
        cutoff = wf.cutoff(day)
        known = {
            name: tables[name].filter(pl.col("ts") < cutoff) if tables[name].height else tables[name]
            for name in ("premium", "candles")
        }
        known["orderbook"] = pl.DataFrame()  # the product's agents learn without books (RLSettings)
        trained: TrainedDay = train_day(day, kind, known, wf, acfg, progress=tick)
        trained.agent.save(path)
        card = _jsonable(trained.card())
        card["notes"] = trained.notes
        card_file.write_text(json.dumps({"settings": want, "card": card}, indent=1))
        self.cards.append(card)
        return trained.agent

    def run(self, progress: bool = True) -> pl.DataFrame:
        from tqdm import tqdm

        tables = self.tables()
        bar = tqdm(total=len(days_between(self.start, self.end)) * (len(self.agents) + self.with_ensemble),
                   unit="model", desc="rl study", disable=not progress)  # fmt: skip
        predictions = pl.DataFrame()
        if self.with_ensemble:
            predictions = self.predictions(
                lambda what: (bar.set_postfix_str(what), bar.update("ensemble " in what))
            )
        bt = self.walk_forward().backtest  # the backtest's default accounting, bar fills
        markets: list[Market] = []
        for venue in self.kr_venues:
            found, _ = day_markets(
                tables["premium"].filter(pl.col("ts") >= _day_start(self.start - timedelta(days=1))),
                tables["candles"],
                pl.DataFrame(),
                coins=self.coins,
                kr_venue=venue,
                config=bt,
            )
            markets += found
        chains: dict[tuple[str, str, str], Chain] = {}
        days = days_between(self.start, self.end)
        for day in days:
            agents: dict[str, Agent] = {}
            for kind in self.agents:
                bar.set_postfix_str(f"{day} {kind}")

                def tick(done: int, total: int, kind: str = kind, day: date = day) -> None:
                    bar.set_postfix_str(f"{day} {kind} {done:,}/{total:,} steps")

                agents[kind] = self.agent(day, kind, tables, tick)
                bar.update(1)
            todays = [m for m in markets if int(m.ts[0]) // (86_400 * US) == (day - date(1970, 1, 1)).days]
            for market in todays:
                history = previous_market(markets, market)
                for strategy in ("zscore", "ensemble", *self.agents):
                    key = (strategy, market.coin, market.kr_venue)
                    chain = chains.setdefault(key, Chain(strategy, market.coin, market.kr_venue))
                    signals = self._signals(strategy, chain, market, history, predictions, agents)
                    if signals is None:
                        chain.flat_days.append(day.isoformat())
                        signals = pl.DataFrame({"ts": market.ts_series(), "target": np.zeros(market.n)})
                    chain.run(market, signals, bt)
        bar.close()
        # A strategy with no signal on any day (the ensemble predicts one venue) is left out.
        rows = [c.metrics() for c in chains.values() if c.days > len(c.flat_days)]
        frame = pl.DataFrame(rows).sort("kr_venue", "coin", "strategy") if rows else pl.DataFrame()
        return frame

    def _signals(
        self,
        strategy: str,
        chain: Chain,
        market: Market,
        history: Market | None,
        predictions: pl.DataFrame,
        agents: dict[str, Agent],
    ) -> pl.DataFrame | None:
        if strategy == "zscore":
            if chain.rule_state is None:  # warm up on the day before the range, like the daily backtests
                chain.rule_state = zscore_state(zscore_bars(market.interval_s))
                if history is not None:
                    zscore_signals(
                        history,
                        window=zscore_bars(market.interval_s),
                        entry_z=ENTRY_Z,
                        exit_z=EXIT_Z,
                        state=chain.rule_state,
                    )
            return zscore_signals(
                market,
                window=zscore_bars(market.interval_s),
                entry_z=ENTRY_Z,
                exit_z=EXIT_Z,
                state=chain.rule_state,
            )
        if strategy == "ensemble":
            if chain.rule_state is None:
                chain.rule_state = prediction_state()
            if not predictions.height:
                return None
            ts0 = _utc(market.ts[0])
            ts1 = _utc(market.ts[-1])
            rows = predictions.filter(
                (pl.col("model") == "ensemble")
                & (pl.col("coin") == market.coin)
                & pl.col("ts").is_between(ts0, ts1)
            )
            if "kr_venue" in rows.columns:
                rows = rows.filter(pl.col("kr_venue") == market.kr_venue)
            elif market.kr_venue != self.settings.walk_forward.kr_venue:
                return None  # the ensemble predicts one Korean venue's premium (KIMP_WF_KR_VENUE)
            if not rows.height:
                return None
            return prediction_signals(
                market,
                rows,
                model="ensemble",
                threshold=PRED_THRESHOLD,
                size_step=PRED_SIZE_STEP,
                state=chain.rule_state,
            )
        signals, _ = act_day(agents[strategy], market, history=history)
        return signals


def _day_start(day: date) -> Any:
    from kimp.timeutil import day_start

    return day_start(day)


def _utc(us: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(us) / US, tz=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def markdown(frame: pl.DataFrame, cards: list[dict[str, Any]]) -> str:
    """The results table (returns, drawdown and costs in % of each market's capital) and the agents'
    training summary."""
    lines = [
        "| venue | coin | strategy | total return | Sharpe | max drawdown | trades | costs (% of capital) |"
        " flat days |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in frame.iter_rows(named=True):
        sharpe = r["sharpe"]
        lines.append(
            f"| {r['kr_venue']} | {r['coin']} | {r['strategy']} | {r['total_return']:+.2%} | "
            f"{'n/a' if sharpe is None or sharpe != sharpe else f'{sharpe:+.2f}'} | {r['max_drawdown']:.2%} | "
            f"{r['trades']} | {r['cost_total_pct']:.2%} | {r['flat_days']} |"
        )
    if cards:
        lines += [
            "",
            "| agent | days | steps (mean) | train s (mean) | budget hit | val return (mean) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for kind in sorted({c["agent"] for c in cards}):
            cs = [c for c in cards if c["agent"] == kind]
            vals = [c["val_total_return"] for c in cs if c.get("val_total_return") is not None]
            lines.append(
                f"| {kind} | {len(cs)} | {np.mean([c['steps'] for c in cs]):,.0f} | "
                f"{np.mean([c['train_seconds'] for c in cs]):.1f} | {sum(bool(c['budget_hit']) for c in cs)} | "
                f"{np.mean(vals):+.2%} |"
                if vals
                else f"| {kind} | {len(cs)} | | | | |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kimp.rl.study",
        description="Walk-forward of the RL agents beside the z-score baseline and the ensemble, after all "
        "costs (docs/rl.md). Settings (KIMP_HOME, KIMP_RL_*, KIMP_SEED) from the environment.",
    )
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first day acted on (UTC)")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last day, inclusive")
    parser.add_argument("--kr-venue", action="append", choices=["upbit", "bithumb"], help="default: both")
    parser.add_argument("--coin", action="append", help="default: the backtest's coins (BTC, ETH)")
    parser.add_argument("--agent", action="append", choices=list(AGENTS), help="default: ppo and dqn")
    parser.add_argument("--retrain", action="store_true", help="train agents again even if saved")
    parser.add_argument("--no-ensemble", action="store_true", help="skip the ensemble's walk-forward")
    parser.add_argument(
        "--no-feature-warmup", action="store_true", help="no look-back history before the ensemble's window"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    settings = Settings.from_env()
    study = Study(
        settings=settings,
        start=args.start,
        end=args.end,
        kr_venues=tuple(args.kr_venue or settings.backtest.kr_venues),
        coins=tuple(args.coin or settings.backtest.coins),
        agents=tuple(args.agent or AGENTS),
        retrain=args.retrain,
        with_ensemble=not args.no_ensemble,
        feature_warmup=not args.no_feature_warmup,
    )
    t0 = time.perf_counter()
    frame = study.run(progress=not args.no_progress)
    study.folder.mkdir(parents=True, exist_ok=True)
    stem = study.folder / f"results_{args.start}_{args.end}"
    frame.write_csv(stem.with_suffix(".csv"))
    text = markdown(frame, study.cards)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(
        f"rl study {args.start}..{args.end}: {time.perf_counter() - t0:.0f} s; {stem}.csv, {stem}.md",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One research run: a period and a horizon through the project's one walk-forward (kimp.models.walk_forward).

For every ``retrain_every_days``-th predicted day D the models are trained with ``train_day`` (the window
before D minus the embargo; members of the configured list, the baselines, the ensemble), the decision
rules are fitted on the same VALIDATION rows (kimp.models.decision), and ``predict_day`` scores D and
the following days up to the next retraining with those models (older models, never newer data). The
result is every out-of-sample prediction with its label, argmax decision and validated-weights decision.
The ``ensemble`` is the product's (kimp.models.walk_forward.fit_day_ensemble): per training day, the
validated choice among the members' mixture, the members and the baselines; ``choices`` says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import polars as pl

from kimp.models.base import WalkForwardConfig
from kimp.models.dataset import DatasetError
from kimp.models.decision import decide, fit_class_weights
from kimp.models.labels import Target
from kimp.models.walk_forward import predict_day, train_day, validation_scores
from kimp.research.data import PeriodInputs
from kimp.research.periods import Period
from kimp.timeutil import days_between

log = logging.getLogger(__name__)


def round_trip_cost(kr_venue: str) -> float:
    """Round trip of the spread trade on ``kr_venue`` (two legs, in and out, taker fees of the backtest's
    cost model: Upbit 0.05% + Binance 0.10% -> 0.30 pp; Bithumb 0.25% + 0.10% -> 0.70 pp)."""
    from kimp.backtest.config import CostConfig

    costs = CostConfig()
    return 2.0 * (costs.kr_fees(kr_venue).taker + costs.binance_spot.taker)


def horizon_config(base: WalkForwardConfig, period: Period, hours: int, *, window_days: int,
                   models: tuple[str, ...]) -> WalkForwardConfig:  # fmt: skip
    return replace(
        base,
        horizon_minutes=hours * 60,
        window_days=window_days,
        embargo_minutes=None,
        kr_venue=period.kr_venue,
        round_trip_cost=round_trip_cost(period.kr_venue),
        models=models,
        history_bars=200 if "lstm" in models else 0,
    )


@dataclass
class HorizonRun:
    period: str
    hours: int
    predictions: pl.DataFrame  # ts, coin, horizon, model, p_*, label, day, pred, pred_w, trained_on
    choices: (
        pl.DataFrame
    )  # trained_on, chosen (the ensemble's validated choice), its options' scores, weights
    skipped: list[str]
    target: str = "premium"


def _decisions(frame: pl.DataFrame, weights: dict[str, np.ndarray]) -> pl.DataFrame:
    parts = []
    for (name,), part in frame.group_by(["model"], maintain_order=True):
        p = part.select("p_down", "p_flat", "p_up").fill_null(float("nan")).to_numpy()
        parts.append(
            part.with_columns(
                pred=pl.Series(decide(p), dtype=pl.Int8),
                pred_w=pl.Series(decide(p, weights.get(str(name))), dtype=pl.Int8),
            )
        )
    return pl.concat(parts) if parts else frame


def run_horizon(
    inputs: PeriodInputs,
    period: Period,
    config: WalkForwardConfig,
    *,
    retrain_every_days: int = 7,
    days: list[date] | None = None,
    target: Target = "premium",
    progress: Callable[[str], None] | None = None,
) -> HorizonRun:
    """Walk-forward of ``period`` at ``config.horizon_minutes`` (module docstring)."""
    days = days or days_between(period.start, period.end)
    hours = config.horizon_minutes // 60
    features, premium = inputs.features, inputs.premium
    have = set(premium["ts"].dt.date().unique().to_list())
    preds: list[pl.DataFrame] = []
    choices: list[dict[str, object]] = []
    skipped: list[str] = []
    for i in range(0, len(days), retrain_every_days):
        block = [d for d in days[i : i + retrain_every_days] if d in have]
        if not block:
            continue
        trained_on = block[0]
        try:
            dm = train_day(
                features, premium, day=trained_on, config=config, target=target, candles=inputs.candles
            )
        except DatasetError as exc:
            skipped.append(f"{trained_on}: {exc}")
            log.warning("research %s %dh: %s", period.name, hours, exc)
            continue
        weights: dict[str, np.ndarray] = {}
        for name, model in dm.models.items():
            if name == "ensemble" and dm.ensemble.class_weights:  # the choice's own validated weights
                weights[name] = np.asarray(dm.ensemble.class_weights[dm.ensemble.chosen])
                continue
            weights[name], _ = fit_class_weights(*validation_scores(model, dm.frame))
        chosen = dm.ensemble.chosen
        choices.append(
            {
                "trained_on": trained_on,
                "chosen": chosen,
                **{f"val_f1_{k}": v for k, v in dm.ensemble.choice.items()},
                "weights": {k: [round(float(x), 3) for x in w] for k, w in weights.items()},
            }
        )
        for day in block:
            frame = predict_day(
                dm, features, premium, day=day, config=config, target=target, candles=inputs.candles
            )
            frame = _decisions(frame, weights).with_columns(
                day=pl.col("ts").dt.date(), trained_on=pl.lit(trained_on)
            )
            preds.append(frame)
        if progress:
            progress(f"{period.name} {target} {hours}h: trained on {trained_on}, chose {chosen}")
    predictions = pl.concat(preds, how="vertical_relaxed") if preds else pl.DataFrame()
    choice_frame = (
        pl.DataFrame(
            [
                {**{k: v for k, v in c.items() if k != "weights"}, "weights": str(c["weights"])}
                for c in choices
            ]
        )
        if choices
        else pl.DataFrame()
    )
    return HorizonRun(period.name, hours, predictions, choice_frame, skipped, target)

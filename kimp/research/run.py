"""``run_research``: every configured period and horizon, scored and written as one report.

Outputs under ``Settings.research_dir`` (``$KIMP_HOME/research``): ``predictions/<period>_<h>h.parquet``
(every out-of-sample prediction, decision and training day), ``choices/<period>_<h>h.parquet`` (the
validated choice per training day), ``research_scores.parquet`` / ``.csv`` (the table),
``research_summary.parquet``, ``research.md`` and ``research.html``. A period or horizon that cannot run
is listed in the notes with the reason; a failed period never replaces the outputs of the last good run
(they are written only at the end, to temporary names first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from kimp.errors import KimpError
from kimp.research import periods as period_registry
from kimp.research.backtest import backtest_period, backtest_table
from kimp.research.bootstrap import BootstrapConfig, score_table
from kimp.research.data import period_inputs
from kimp.research.periods import Period
from kimp.research.regression import run_change, score_change
from kimp.research.report import delta_png, html_page, markdown, summary
from kimp.research.study import horizon_config, run_horizon
from kimp.settings import Settings
from kimp.timeutil import days_between

log = logging.getLogger(__name__)


@dataclass
class ResearchResult:
    scores: pl.DataFrame
    summary: pl.DataFrame
    notes: list[str]
    out_dir: Path
    samples: dict[tuple[str, str, int], dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    backtest: pl.DataFrame = field(default_factory=pl.DataFrame)
    change: pl.DataFrame = field(default_factory=pl.DataFrame)  # the regression target's scores

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / "research.md"

    @property
    def html_path(self) -> Path:
        return self.out_dir / "research.html"

    @property
    def plot_path(self) -> Path:
        return self.out_dir / "research_deltas.png"


def selected_periods(settings: Settings) -> list[Period]:
    names = settings.research.periods or tuple(period_registry.PERIODS)
    return [period_registry.get(n) for n in names]


def _days(period: Period, start: date | None, end: date | None, max_days: int | None) -> list[date]:
    lo = max(period.start, start) if start else period.start
    hi = min(period.end, end) if end else period.end
    if hi < lo:
        return []
    days = days_between(lo, hi)
    return days[-max_days:] if max_days else days


def run_research(
    settings: Settings,
    start: date | None = None,
    end: date | None = None,
    *,
    periods: list[Period] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ResearchResult:
    """Run the walk-forward of every period x horizon inside ``start``..``end`` and write the report."""
    rs = settings.research
    if settings.data_dir is None:
        raise ValueError(
            "kimp research reads the real data: set KIMP_DATA_DIR to the shared real-data folder"
        )
    data_dir = Path(settings.data_dir)
    out_dir = settings.research_dir
    work = out_dir / "work"
    notes: list[str] = []
    frames: list[pl.DataFrame] = []
    samples: dict[tuple[str, str, int], dict[str, dict[str, np.ndarray]]] = {}
    runs: dict[str, pl.DataFrame] = {}
    backtests: list[pl.DataFrame] = []
    validation: list[pl.DataFrame] = []
    changes: list[pl.DataFrame] = []
    boot = BootstrapConfig(n_samples=rs.bootstrap_samples, block_days=rs.block_days, seed=settings.seed)
    for period in periods or selected_periods(settings):
        days = _days(period, start, end, rs.max_days)
        if not days:
            notes.append(
                f"{period.name}: not run, its days {period.start}..{period.end} are outside {start}..{end}"
            )
            continue
        hours_list = [h for h in (rs.horizons_h or period.horizons_h) if period.allows(h)]
        not_allowed = [h for h in rs.horizons_h if not period.allows(h)]
        if not_allowed:
            notes.append(f"{period.name}: horizons {not_allowed} h not run (bars of {period.interval_s} s)")
        if not hours_list:
            continue
        window = rs.window_days or period.window_days
        retrain = rs.retrain_every_days or period.retrain_every_days
        t0 = time.perf_counter()
        try:
            inputs = period_inputs(
                period, data_dir, work, window_days=window, first_day=days[0], last_day=days[-1]
            )
        except KimpError as exc:  # one period's bad data must not cost the others their results
            notes.append(f"{period.name}: not run, its data failed: {exc}")
            log.error("research %s: %s", period.name, exc)
            continue
        log.info("research %s: inputs in %.1fs", period.name, time.perf_counter() - t0)
        if progress:
            progress(
                f"{period.name}: {inputs.features.height} feature rows x {inputs.features.width - 3} features "
                f"({time.perf_counter() - t0:.0f}s); predicting {days[0]}..{days[-1]}"
            )
        for target, hours in [(t, h) for t in rs.targets for h in hours_list]:
            tag = f"{period.name} {hours}h" + ("" if target == "premium" else f" ({target})")
            name = f"{period.name}_{hours}h" + ("" if target == "premium" else f"_{target}")
            config = horizon_config(
                settings.walk_forward, period, hours, window_days=window, models=rs.models
            )
            t1 = time.perf_counter()
            if target == "change":
                preds, skipped = run_change(
                    inputs, period, config, days=days, retrain_every_days=retrain, progress=progress
                )
                notes += [f"{tag}: training day skipped: {s}" for s in skipped]
                table = score_change(preds, config=boot) if preds.height else pl.DataFrame()
                if table.height == 0:
                    notes.append(f"{tag}: no scored rows")
                    continue
                runs[f"predictions/{name}.parquet"] = preds
                changes.append(
                    table.with_columns(
                        period=pl.lit(period.name),
                        hours=pl.lit(hours),
                        kr_venue=pl.lit(period.kr_venue),
                        window_days=pl.lit(window),
                        half_life_days=pl.lit(config.sample_half_life_days, dtype=pl.Float64),
                        seconds=pl.lit(round(time.perf_counter() - t1, 1)),
                    )
                )
                continue
            run = run_horizon(
                inputs,
                period,
                config,
                retrain_every_days=retrain,
                days=days,
                progress=progress,
                target=target,  # type: ignore[arg-type]
            )
            for s in run.skipped:
                notes.append(f"{tag}: training day skipped: {s}")
            if run.predictions.height == 0:
                notes.append(f"{tag}: no predictions (every training day was skipped)")
                continue
            table, samp = score_table(run.predictions, config=boot)
            if table.height == 0:
                notes.append(f"{tag}: no scored rows (no label known in the predicted days)")
                continue
            samples[(period.name, target, hours)] = samp
            frames.append(
                table.with_columns(
                    period=pl.lit(period.name),
                    target=pl.lit(target),
                    hours=pl.lit(hours),
                    kr_venue=pl.lit(period.kr_venue),
                    flat_band=pl.lit(config.flat_band),
                    window_days=pl.lit(window),
                    half_life_days=pl.lit(config.sample_half_life_days, dtype=pl.Float64),
                    retrain_every_days=pl.lit(retrain),
                    first_day=pl.lit(days[0]),
                    last_day=pl.lit(days[-1]),
                    seconds=pl.lit(round(time.perf_counter() - t1, 1)),
                )
            )
            runs[f"predictions/{name}.parquet"] = run.predictions
            if target == "premium":  # the spread trade acts on the premium's direction only
                backtests.append(
                    _backtest(
                        settings,
                        period,
                        hours,
                        target,
                        inputs.premium,
                        inputs.candles,
                        run.predictions,
                        notes,
                    )
                )
            if run.choices.height:
                runs[f"choices/{name}.parquet"] = run.choices
                validation.append(
                    validation_rows(run.choices).with_columns(
                        period=pl.lit(period.name), target=pl.lit(target), hours=pl.lit(hours)
                    )
                )
                chosen = run.choices["chosen"].value_counts(sort=True)
                notes.append(
                    f"{tag}: validated choice per training day: "
                    + ", ".join(f"{r['chosen']} {r['count']}x" for r in chosen.iter_rows(named=True))
                )
    if validation:
        runs["research_validation.parquet"] = pl.concat(validation, how="diagonal_relaxed").with_columns(
            half_life_days=pl.lit(settings.walk_forward.sample_half_life_days, dtype=pl.Float64)
        )
    return _assemble(out_dir, frames, samples, notes, runs, backtests, changes)


def _assemble(
    out_dir: Path,
    frames: list[pl.DataFrame],
    samples: dict[tuple[str, str, int], dict[str, dict[str, np.ndarray]]],
    notes: list[str],
    runs: dict[str, pl.DataFrame],
    backtests: list[pl.DataFrame],
    changes: list[pl.DataFrame],
) -> ResearchResult:
    """The report of a run (or of runs combined): scores sorted, the summary over periods, the backtests
    and regression rows concatenated, everything written to ``out_dir``."""
    lead = ["period", "target", "hours", "model"]
    scores = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if scores.height:
        scores = scores.select(*lead, pl.exclude(lead)).sort(lead)
    summ = summary(scores, samples)
    kept = [b for b in backtests if b.height]
    bt = pl.concat(kept, how="diagonal_relaxed") if kept else pl.DataFrame()
    change = pl.concat(changes, how="diagonal_relaxed") if changes else pl.DataFrame()
    _write(out_dir, scores, summ, notes, runs, bt, change)
    return ResearchResult(
        scores=scores,
        summary=summ,
        notes=notes,
        out_dir=out_dir,
        samples=samples,
        backtest=bt,
        change=change,
    )


def validation_rows(choices: pl.DataFrame) -> pl.DataFrame:
    """Per option of the ensemble's choice (mixture, members, baselines): the mean over training days of
    its VALIDATION macro-F1 with validated class weights, and the days it was chosen. What settings such
    as the age-decay weights are judged on (never the predicted days)."""
    cols = [c for c in choices.columns if c.startswith("val_f1_")]
    return pl.DataFrame(
        {
            "option": [c.removeprefix("val_f1_") for c in cols],
            "val_macro_f1_w": [float(choices[c].mean()) for c in cols],  # type: ignore[arg-type]
            "chosen_days": [int((choices["chosen"] == c.removeprefix("val_f1_")).sum()) for c in cols],
            "training_days": [choices.height] * len(cols),
        }
    )


def _backtest(
    settings: Settings,
    period: Period,
    hours: int,
    target: str,
    premium: pl.DataFrame,
    candles: pl.DataFrame,
    predictions: pl.DataFrame,
    notes: list[str],
) -> pl.DataFrame:
    """The after-cost backtest of one period-horizon's predictions (kimp.research.backtest)."""
    t0 = time.perf_counter()
    result = backtest_period(
        period,
        premium=premium,
        candles=candles,
        predictions=predictions,
        params=settings.backtest.params,
        seed=settings.seed,
    )
    tag = f"{period.name} {hours}h"
    notes += [f"{tag} backtest: {n}" for n in result.notes]
    if result.skipped:
        notes.append(
            f"{tag} backtest: {len(result.skipped)} day(s) not backtested (the chain continues over them), "
            f"first: {result.skipped[0]}"
        )
    log.info("research %s backtest in %.1fs", tag, time.perf_counter() - t0)
    return backtest_table(period, hours, target, result)


def _write(
    out_dir: Path,
    scores: pl.DataFrame,
    summ: pl.DataFrame,
    notes: list[str],
    runs: dict[str, pl.DataFrame],
    backtest: pl.DataFrame | None = None,
    change: pl.DataFrame | None = None,
) -> None:
    """Everything to temporary names first, then renamed: a failure leaves the previous report whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []

    def stage(rel: str, write: Callable[[Path], object]) -> None:
        final = out_dir / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".tmp")
        write(tmp)
        staged.append((tmp, final))

    for rel, frame in runs.items():
        stage(rel, frame.write_parquet)
    stage("research_scores.parquet", scores.write_parquet)
    stage(
        "research_scores.csv",
        lambda p: scores.drop([c for c, t in scores.schema.items() if t == pl.Object]).write_csv(p),
    )
    stage("research_summary.parquet", summ.write_parquet)
    bt = backtest if backtest is not None else pl.DataFrame()
    ch = change if change is not None else pl.DataFrame()
    if bt.height:
        stage("research_backtest.parquet", bt.write_parquet)
        stage("research_backtest.csv", bt.write_csv)
    if ch.height:
        stage("research_change.parquet", ch.write_parquet)
        stage("research_change.csv", ch.write_csv)
    stage(
        "research.md",
        lambda p: p.write_text(
            "# Research report\n\n" + markdown(scores, summ, notes, backtest=bt, change=ch)
        ),
    )
    plot = "research_deltas.png" if scores.height else None
    stage(
        "research.html",
        lambda p: p.write_text(
            html_page("kimp research report", scores, summ, notes, plot=plot, backtest=bt, change=ch)
        ),
    )
    if plot:
        stage(plot, lambda p: delta_png(scores, p))
    for tmp, final in staged:
        tmp.replace(final)


def combine_reports(
    sources: list[Path], out_dir: Path, *, boot: BootstrapConfig | None = None
) -> ResearchResult:
    """One report from several ``run_research`` outputs (e.g. periods run as separate processes): their
    score tables side by side, and the mean over periods recomputed from their saved predictions with the
    same seeded bootstrap (``boot`` must be the one they ran with for the intervals to match)."""
    boot = boot or BootstrapConfig()
    frames, notes, backtests, validation, changes = [], [], [], [], []
    samples: dict[tuple[str, str, int], dict[str, dict[str, np.ndarray]]] = {}
    for src in sources:
        scores = pl.read_parquet(src / "research_scores.parquet")
        if scores.height and "target" not in scores.columns:
            scores = scores.with_columns(target=pl.lit("premium"))
        if scores.height:
            frames.append(scores)
        for period, target, hours in (
            scores.select("period", "target", "hours").unique().iter_rows() if scores.height else []
        ):
            name = f"{period}_{hours}h" + ("" if target == "premium" else f"_{target}")
            _, samples[(period, target, hours)] = score_table(
                pl.read_parquet(src / "predictions" / f"{name}.parquet"), config=boot
            )
        if (src / "research_backtest.parquet").exists():
            backtests.append(pl.read_parquet(src / "research_backtest.parquet"))
        if (src / "research_change.parquet").exists():
            changes.append(pl.read_parquet(src / "research_change.parquet"))
        if (src / "research_validation.parquet").exists():
            validation.append(pl.read_parquet(src / "research_validation.parquet"))
        md = (src / "research.md").read_text()
        if "## Notes" in md:
            notes += [ln[2:] for ln in md.split("## Notes", 1)[1].splitlines() if ln.startswith("- ")]
    extra = (
        {"research_validation.parquet": pl.concat(validation, how="diagonal_relaxed")} if validation else {}
    )
    return _assemble(out_dir, frames, samples, notes, extra, backtests, changes)

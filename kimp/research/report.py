"""The research report: tables (one row per period, horizon and model; the after-cost backtest; the
regression target) as Markdown and HTML.

Each number is the out-of-sample value over the predicted days with its block-bootstrap interval
(kimp.research.bootstrap); ``delta`` columns are paired differences to persistence. The summary answers
the issue's question: averaged over the periods that allow a 1-hour horizon, is the ensemble (the
validated choice among members and baselines) at least 5 macro-F1 points above persistence, and which
horizon comes closest.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

TARGET_POINTS = 0.05


def _ci(v: float, lo: float, hi: float, digits: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _row_cells(r: Mapping[str, object]) -> list[str]:
    def g(k: str) -> float:
        v = r.get(k)
        return float(v) if v is not None else float("nan")  # type: ignore[arg-type]

    return [
        str(r["period"]),
        str(r.get("target", "premium")),
        f"{r['hours']}h",
        str(r["model"]),
        str(r["rows"]),
        str(r["days"]),
        _ci(g("macro_f1"), g("macro_f1_lo"), g("macro_f1_hi")),
        _ci(g("delta_macro_f1"), g("delta_macro_f1_lo"), g("delta_macro_f1_hi")),
        _ci(g("macro_f1_w"), g("macro_f1_w_lo"), g("macro_f1_w_hi")),
        _ci(g("delta_macro_f1_w"), g("delta_macro_f1_w_lo"), g("delta_macro_f1_w_hi")),
        _ci(g("log_loss"), g("log_loss_lo"), g("log_loss_hi")),
        _ci(g("delta_log_loss"), g("delta_log_loss_lo"), g("delta_log_loss_hi")),
    ]


HEADER = [
    "period",
    "target",
    "horizon",
    "model",
    "rows",
    "days",
    "macro-F1 [90% CI]",
    "Δ macro-F1 vs persistence",
    "macro-F1, validated class weights",
    "Δ (weighted) vs persistence (weighted)",
    "log-loss",
    "Δ log-loss vs persistence",
]


def summary(
    scores: pl.DataFrame, samples: Mapping[tuple[str, str, int], Mapping[str, Mapping[str, np.ndarray]]]
) -> pl.DataFrame:
    """Per target, horizon and model: the mean over periods of the macro-F1 difference to persistence (argmax and
    weighted decisions), with a 90% interval from averaging the periods' bootstrap samples."""
    rows = []
    if scores.height == 0:
        return pl.DataFrame()
    for target, hours in sorted(scores.select("target", "hours").unique().iter_rows()):
        keys = [k for k in samples if k[1:] == (target, hours) and "persistence" in samples[k]]
        models = set.intersection(*(set(samples[k]) for k in keys)) if keys else set()
        for model in sorted(models - {"persistence"}):
            for metric in ("macro_f1", "macro_f1_w"):
                diffs = np.mean(
                    [samples[k][model][metric] - samples[k]["persistence"][metric] for k in keys], axis=0
                )
                part = scores.filter(
                    (pl.col("target") == target) & (pl.col("hours") == hours) & (pl.col("model") == model)
                )
                point = float(part[f"delta_{metric}"].mean())
                rows.append(
                    {
                        "target": target,
                        "hours": hours,
                        "model": model,
                        "decision": "argmax" if metric == "macro_f1" else "validated weights",
                        "periods": len(keys),
                        "mean_delta_macro_f1": point,
                        "lo": float(np.quantile(diffs, 0.05)),
                        "hi": float(np.quantile(diffs, 0.95)),
                        "reaches_5_points": point >= TARGET_POINTS,
                    }
                )
    return pl.DataFrame(rows)


BACKTEST_HEADER = [
    "period",
    "horizon",
    "venue",
    "strategy",
    "coin",
    "days",
    "return",
    "Sharpe",
    "max drawdown",
    "trades",
    "costs (M KRW)",
    "of which fees",
]


def _pct(v: object) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{100 * float(v):+.2f}%"  # type: ignore[arg-type]


def _num(v: object, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else fmt.format(float(v))  # type: ignore[arg-type]


def backtest_cells(r: Mapping[str, object]) -> list[str]:
    """One backtest row: the range figures of a strategy over a period (positions carried across days)."""
    mdd = r.get("max_drawdown")
    return [
        str(r["period"]),
        f"{r['hours']}h",
        str(r["kr_venue"]),
        "z-score rule" if r["strategy"] == "zscore" else f"{r['strategy']} predictions",
        str(r["coin"]),
        str(r.get("days")),
        _pct(r.get("total_return")),
        _num(r.get("sharpe")),
        "n/a" if mdd is None else _pct(-abs(float(mdd))),  # type: ignore[arg-type]
        str(r.get("trades")),
        _num(float(r.get("cost_total") or 0.0) / 1e6, "{:.1f}"),  # type: ignore[arg-type]
        _num(float(r.get("cost_fees") or 0.0) / 1e6, "{:.1f}"),  # type: ignore[arg-type]
    ]


def _backtest_rows(backtest: pl.DataFrame) -> list[list[str]]:
    if not backtest.height:
        return []
    order = backtest.with_columns(_z=pl.col("strategy") != "zscore", _all=pl.col("coin") == "all")
    order = order.sort("period", "hours", "_all", "coin", "_z", "strategy")
    return [backtest_cells(r) for r in order.iter_rows(named=True)]


BACKTEST_INTRO = (
    "The prediction rule (kimp.backtest.signals.prediction_signals, default parameters) on each model's "
    "out-of-sample predictions against the z-score rule, through kimp.backtest.daily.backtest_day day by "
    "day with positions carried across days, on the period's Korean venue with its fees (Bithumb 0.25%, "
    "Upbit 0.05%, Binance 0.10% per fill), slippage, impact and FX conversion; scenario normal. Return, "
    "Sharpe and drawdown are those of the chained equity curve (one run over the period); `all`: the "
    "coins' equal-capital mean of daily returns, compounded."
)


CHANGE_HEADER = [
    "period",
    "horizon",
    "model",
    "rows",
    "days",
    "RMSE (bp)",
    "Δ RMSE vs persistence",
    "Δ RMSE vs zero",
    "MAE (bp)",
    "Δ MAE vs zero",
    "hit rate",
    "Δ hit rate vs persistence",
]

CHANGE_INTRO = (
    "The premium's change over the horizon in basis points (regression target, kimp.models.regression), "
    "out of sample: RMSE and MAE, and the directional hit rate (a zero prediction counts one half, so "
    "`zero` scores 0.5), with 90% block-bootstrap intervals over days and paired differences; "
    "`persistence`: the change over the last horizon repeats; `zero`: no change. Lower RMSE/MAE is better."
)


def change_cells(r: Mapping[str, object]) -> list[str]:
    def g(k: str) -> float:
        v = r.get(k)
        return float(v) if v is not None else float("nan")  # type: ignore[arg-type]

    def ci(k: str, digits: int = 1) -> str:
        return _ci(g(k), g(f"{k}_lo"), g(f"{k}_hi"), digits)

    return [
        str(r["period"]),
        f"{r['hours']}h",
        str(r["model"]),
        str(r["rows"]),
        str(r["days"]),
        ci("rmse_bp"),
        ci("rmse_bp_vs_persistence"),
        ci("rmse_bp_vs_zero"),
        ci("mae_bp"),
        ci("mae_bp_vs_zero"),
        ci("hit_rate", 3),
        ci("hit_rate_vs_persistence", 3),
    ]


def _change_rows(change: pl.DataFrame | None) -> list[list[str]]:
    if change is None or not change.height:
        return []
    return [change_cells(r) for r in change.sort("period", "hours", "model").iter_rows(named=True)]


def markdown(
    scores: pl.DataFrame,
    summ: pl.DataFrame,
    notes: list[str],
    *,
    backtest: pl.DataFrame | None = None,
    change: pl.DataFrame | None = None,
) -> str:
    lines = ["## Scores per period, horizon and model", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in scores.iter_rows(named=True):
        lines.append("| " + " | ".join(_row_cells(r)) + " |")
    lines += ["", "## Mean over periods of the macro-F1 difference to persistence", ""]
    if summ.height:
        cols = ["target", "horizon", "model", "decision", "periods", "mean Δ macro-F1 [90% CI]", "≥ 5 points"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in summ.iter_rows(named=True):
            lines.append(
                f"| {r['target']} | {r['hours']}h | {r['model']} | {r['decision']} | {r['periods']} | "
                f"{_ci(r['mean_delta_macro_f1'], r['lo'], r['hi'])} | {'yes' if r['reaches_5_points'] else 'no'} |"
            )
    if backtest is not None and backtest.height:
        lines += ["", "## After-cost backtest of the predictions (positions carried across days)", ""]
        lines += [BACKTEST_INTRO, ""]
        lines += ["| " + " | ".join(BACKTEST_HEADER) + " |", "|" + "---|" * len(BACKTEST_HEADER)]
        lines += ["| " + " | ".join(c) + " |" for c in _backtest_rows(backtest)]
    if rows := _change_rows(change):
        lines += ["", "## Regression target: the premium's change in basis points", "", CHANGE_INTRO, ""]
        lines += ["| " + " | ".join(CHANGE_HEADER) + " |", "|" + "---|" * len(CHANGE_HEADER)]
        lines += ["| " + " | ".join(c) + " |" for c in rows]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def html_page(
    title: str,
    md_scores: pl.DataFrame,
    summ: pl.DataFrame,
    notes: list[str],
    *,
    plot: str | None = None,
    backtest: pl.DataFrame | None = None,
    change: pl.DataFrame | None = None,
) -> str:
    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<img src='{html.escape(plot)}' alt='macro-F1 minus persistence'>" if plot else "",
        "<h2>Scores per period, horizon and model</h2>",
        table(HEADER, [_row_cells(r) for r in md_scores.iter_rows(named=True)]),
    ]
    if summ.height:
        parts += [
            "<h2>Mean over periods of the macro-F1 difference to persistence</h2>",
            table(
                [
                    "target",
                    "horizon",
                    "model",
                    "decision",
                    "periods",
                    "mean Δ macro-F1 [90% CI]",
                    "≥ 5 points",
                ],
                [
                    [
                        r["target"],
                        f"{r['hours']}h",
                        r["model"],
                        r["decision"],
                        str(r["periods"]),
                        _ci(r["mean_delta_macro_f1"], r["lo"], r["hi"]),
                        "yes" if r["reaches_5_points"] else "no",
                    ]
                    for r in summ.iter_rows(named=True)
                ],
            ),
        ]
    if backtest is not None and backtest.height:
        parts += [
            "<h2>After-cost backtest of the predictions (positions carried across days)</h2>",
            f"<p>{html.escape(BACKTEST_INTRO)}</p>",
            table(BACKTEST_HEADER, _backtest_rows(backtest)),
        ]
    if rows := _change_rows(change):
        parts += [
            "<h2>Regression target: the premium's change in basis points</h2>",
            f"<p>{html.escape(CHANGE_INTRO)}</p>",
            table(CHANGE_HEADER, rows),
        ]
    if notes:
        parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n)}</li>" for n in notes] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def delta_png(
    scores: pl.DataFrame, path: Path, *, models: tuple[str, ...] = ("ensemble", "lightgbm", "logistic")
) -> Path:
    """Macro-F1 difference to persistence with its 90% interval, per period-horizon (rows) and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = scores.select("period", "target", "hours").unique(maintain_order=True).rows()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(keys) + 1.2))
    for j, model in enumerate(models):
        part = scores.filter(pl.col("model") == model)
        for i, (period, target, hours) in enumerate(keys):
            row = part.filter(
                (pl.col("period") == period) & (pl.col("target") == target) & (pl.col("hours") == hours)
            )
            if row.height == 0:
                continue
            r = row.row(0, named=True)
            y = i + (j - 1) * 0.22
            ax.errorbar(
                r["delta_macro_f1"],
                y,
                xerr=[
                    [r["delta_macro_f1"] - r["delta_macro_f1_lo"]],
                    [r["delta_macro_f1_hi"] - r["delta_macro_f1"]],
                ],
                fmt="o",
                color=f"C{j}",
                label=model if i == 0 else None,
                markersize=4,
            )
    ax.axvline(0, color="grey", linewidth=1)
    ax.axvline(TARGET_POINTS, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(keys)), [f"{p} {h}h" + ("" if t == "premium" else f" ({t})") for p, t, h in keys])
    ax.invert_yaxis()
    ax.set_xlabel("macro-F1 minus persistence (90% interval); dashed: +5 points")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path

"""The ADF stationarity report of a training window's features (the training dataset's metadata).

Models impute and scale what they need themselves, fitted on their training rows: the logistic baseline
(median imputation, standard scaling), the LSTM (a training-row standardiser), the boosting models
(missing values natively).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def adf_report(
    frame: pl.DataFrame,
    columns: Sequence[str],
    *,
    max_rows: int = 2_000,
    max_lag: int = 12,
    alpha: float = 0.05,
    group_column: str = "coin",
) -> pl.DataFrame:
    """Augmented Dickey-Fuller test per feature (and per coin when the frame has one).

    Uses the last ``max_rows`` non-null values of each series (a contiguous stretch: thinning would
    change the dynamics the test looks at), a constant, and a fixed ``max_lag`` (autolag would cost
    ~20x more over 650 features). ``stationary`` = p_value < alpha. Constant or short series get a note
    and null statistics.
    """
    from statsmodels.tsa.stattools import adfuller

    groups = (
        frame.partition_by(group_column, as_dict=True) if group_column in frame.columns else {("all",): frame}
    )
    rows: list[dict[str, object]] = []
    for key, part in sorted(groups.items(), key=lambda kv: str(kv[0])):
        part = part.sort("ts") if "ts" in part.columns else part
        name = str(key[0]) if isinstance(key, tuple) else str(key)
        for col in columns:
            values = part[col].cast(pl.Float64)
            values = values.filter(values.is_finite()).tail(max_rows).to_numpy()
            row: dict[str, object] = {
                "column": col,
                group_column: name,
                "n_obs": int(values.size),
                "adf_stat": None,
                "p_value": None,
                "used_lag": None,
                "stationary": None,
                "note": None,
            }
            if values.size < max(30, 3 * max_lag):
                row["note"] = f"too few observations ({values.size})"
            elif np.ptp(values) == 0:
                row["note"] = "constant"
            else:
                stat, p_value, used_lag, *_ = adfuller(values, maxlag=max_lag, regression="c", autolag=None)
                row.update(
                    adf_stat=float(stat),
                    p_value=float(p_value),
                    used_lag=int(used_lag),
                    stationary=bool(p_value < alpha),
                )
            rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "column": pl.String,
            group_column: pl.String,
            "n_obs": pl.Int64,
            "adf_stat": pl.Float64,
            "p_value": pl.Float64,
            "used_lag": pl.Int64,
            "stationary": pl.Boolean,
            "note": pl.String,
        },
    )

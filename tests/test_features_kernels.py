"""Numba kernels against direct computations, and the GARCH MLE against the arch package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kimp.features.garch import fit_garch, garch_conditional_variance, refit_blocks
from kimp.features.kernels import garch_nll_grad, garch_windowed_filter, rolling_ols_slope, windowed_ewm


def _garch_path(n: int, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s2, out = 1.0, np.empty(n)
    for t in range(n):
        out[t] = np.sqrt(s2) * rng.normal()
        s2 = (1 - alpha - beta) + alpha * out[t] ** 2 + beta * s2
    return out * 1e-3


def test_windowed_ewm_equals_adjusted_ewm_over_the_window() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    x[rng.random(300) < 0.1] = np.nan
    alpha, window = 0.2, 25
    got = windowed_ewm(x, alpha, window, 5)
    for t in (30, 150, 299):
        seg = pd.Series(x[t - window + 1 : t + 1])
        # pandas with ignore_na=False weights by position, which is the windowed definition
        expected = seg.ewm(alpha=alpha, adjust=True, ignore_na=False).mean().iloc[-1]
        assert got[t] == pytest.approx(expected, rel=1e-10)
    assert np.isnan(got[2])  # fewer than min_count values


def test_garch_gradient_is_exact() -> None:
    z = _garch_path(3000, 0.08, 0.9, 1) * 1e3
    f0, ga, gb = garch_nll_grad(z, 0.1, 0.8)
    h = 1e-6
    assert ga == pytest.approx((garch_nll_grad(z, 0.1 + h, 0.8)[0] - f0) / h, rel=1e-3)
    assert gb == pytest.approx((garch_nll_grad(z, 0.1, 0.8 + h)[0] - f0) / h, rel=1e-3)


def test_fit_matches_the_arch_package() -> None:
    from arch import arch_model

    r = _garch_path(10_080, 0.08, 0.9, 2)
    ours = fit_garch(r)
    assert ours is not None
    theirs = arch_model(r * 1000, mean="Zero", vol="GARCH", p=1, q=1).fit(disp="off").params
    assert ours.alpha == pytest.approx(theirs["alpha[1]"], abs=0.01)
    assert ours.beta == pytest.approx(theirs["beta[1]"], abs=0.02)
    assert fit_garch(r[:50]) is None  # too few observations


def test_windowed_filter_is_the_recursion_restarted_window_bars_back() -> None:
    r = _garch_path(500, 0.1, 0.85, 3)
    r[[40, 41, 300]] = np.nan
    a, b, v, window = 0.1, 0.85, float(np.nanvar(r)), 60
    s2 = garch_windowed_filter(
        r, np.array([0]), np.array([500]), np.array([a]), np.array([b]), np.array([v]), window
    )
    omega = v * (1 - a - b)
    for t in (window, 200, 499):
        s = v
        for k in range(t - window, t):
            q = r[k] ** 2 if not np.isnan(r[k]) else v
            s = omega + a * q + b * s
        assert s2[t] == pytest.approx(s, rel=1e-9)


def test_refit_blocks_are_aligned_to_the_epoch_so_a_day_gets_the_same_parameters() -> None:
    day_us, minute_us = 86_400 * 10**6, 60 * 10**6
    ts = np.arange(19_700 * day_us, 19_730 * day_us, minute_us)
    starts, _lo, hi = refit_blocks(ts, 7)
    assert all(s % (7 * day_us) == 0 for s in starts) and hi[-1] == ts.size
    r = _garch_path(ts.size, 0.05, 0.9, 4)
    long, _ = garch_conditional_variance(
        ts, r, interval_s=60, fit_days=7, refit_days=7, window_days=1, min_obs=200
    )
    cut = int(np.searchsorted(ts, 19_712 * day_us))  # start the input 14 days before a later day
    later = int(np.searchsorted(ts, 19_726 * day_us))
    short, _ = garch_conditional_variance(
        ts[cut:], r[cut:], interval_s=60, fit_days=7, refit_days=7, window_days=1, min_obs=200
    )
    assert np.allclose(short[later - cut :], long[later:], rtol=1e-9, equal_nan=False)


def test_rolling_ols_slope_equals_least_squares_on_each_window() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=200)
    y = 0.7 * x + rng.normal(scale=0.1, size=200)
    x[[10, 50]] = np.nan
    y[[11, 120]] = np.nan
    got = rolling_ols_slope(x, y, 30, 10)
    for t in (40, 130, 199):
        xs, ys = x[t - 29 : t + 1], y[t - 29 : t + 1]
        ok = ~(np.isnan(xs) | np.isnan(ys))
        assert got[t] == pytest.approx(np.polyfit(xs[ok], ys[ok], 1)[0], rel=1e-9)
    assert np.isnan(got[5])

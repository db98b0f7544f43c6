"""Gaussian-bridge corrections that pin an intraday path to the next day's anchor.

For a Gaussian process X started at the anchor a, the path conditioned on X_T = b is
X_t + w_t (b - X_T) with w_t = Cov(X_t, X_T) / Var(X_T):
- random walk with time-varying variance: w_t = V_t / V_T (V = cumulative variance);
- OU with per-step factor a (stationary, constant shock scale): w_m = a^(n-m) (1 - a^(2m)) / (1 - a^(2n)).
Time-varying shock scales or forcings make the OU weight an approximation, but the end point is always
hit exactly, which is what makes consecutive days join.
"""

from __future__ import annotations

import numpy as np

from kimp.market_data.simulated import kernels


def random_walk_bridge(x0: float, x1: float, var: np.ndarray, shocks: np.ndarray) -> np.ndarray:
    """Path of n+1 points from x0 to x1 with per-step variances ``var`` and unit shocks ``shocks``."""
    steps = np.sqrt(var) * shocks
    free = np.concatenate([[0.0], np.cumsum(steps)])
    cum_var = np.concatenate([[0.0], np.cumsum(var)])
    w = cum_var / cum_var[-1]
    path = x0 + free + w * (x1 - x0 - free[-1])
    path[0], path[-1] = x0, x1
    return path


def ou_weights(a: float, n: int) -> np.ndarray:
    """Bridge weights w_0..w_n of an OU with per-step AR factor ``a`` over n steps."""
    m = np.arange(n + 1, dtype=np.float64)
    la = np.log(a)
    # expm1 keeps precision when a is close to 1 (slow processes over one day behave like random walks)
    return np.exp((n - m) * la) * np.expm1(2.0 * m * la) / np.expm1(2.0 * n * la)


def ou_bridge(
    x0: float,
    x1: float,
    a: float,
    scale: np.ndarray | float,
    shocks: np.ndarray,
    forcing: np.ndarray | None = None,
) -> np.ndarray:
    """OU path of n+1 points from x0 to x1: x[m+1] = a x[m] + scale[m] shocks[m] + forcing[m], bridged."""
    n = shocks.shape[0]
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)).copy()
    g = np.zeros(n) if forcing is None else forcing
    free = kernels.forced_ar(x0, a, s, shocks, g)
    path = free + ou_weights(a, n) * (x1 - free[-1])
    path[0], path[-1] = x0, x1
    return path

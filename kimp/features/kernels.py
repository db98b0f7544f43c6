"""Numba kernels for the recursive features: windowed exponential averages and the GARCH(1,1) filter.

Every kernel is *windowed*: a value at bar t depends only on bars t-W+1..t (W declared by the caller),
never on where the array happens to start. That is what makes a day computed alone (from its declared
look-back) equal the same day computed inside a longer run. Missing inputs are NaN and get zero weight.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def windowed_ewm(x: np.ndarray, alpha: float, window: int, min_count: int) -> np.ndarray:
    """Exponentially weighted mean over the last ``window`` bars, weights (1-alpha)^k, normalized.

    Equals an adjusted EMA (pandas ``adjust=True``) truncated to the window. Running sums are updated
    in O(1) per bar: S_t = d S_{t-1} + x_t - d^W x_{t-W}. NaN bars carry no weight; fewer than
    ``min_count`` valid bars in the window give NaN.
    """
    n = x.shape[0]
    out = np.empty(n)
    d = 1.0 - alpha
    dw = d**window
    num = 0.0
    den = 0.0
    cnt = 0
    for t in range(n):
        xt = x[t]
        num *= d
        den *= d
        if not np.isnan(xt):
            num += xt
            den += 1.0
            cnt += 1
        if t >= window:
            xo = x[t - window]
            if not np.isnan(xo):
                num -= dw * xo
                den -= dw
                cnt -= 1
        if cnt >= min_count and den > 0.0:
            out[t] = num / den
        else:
            out[t] = np.nan
    return out


@njit(cache=True, nogil=True)
def garch_nll(r: np.ndarray, alpha: float, beta: float, var: float) -> float:
    """Gaussian negative log-likelihood of GARCH(1,1) with variance targeting (omega = var(1-a-b)).

    NaN returns are skipped in the likelihood; the variance then moves by its expectation.
    """
    omega = var * (1.0 - alpha - beta)
    s2 = var
    nll = 0.0
    for t in range(r.shape[0]):
        rt = r[t]
        if np.isnan(rt):
            s2 = omega + (alpha + beta) * s2
            continue
        nll += 0.5 * (np.log(s2) + rt * rt / s2)
        s2 = omega + alpha * rt * rt + beta * s2
        if s2 < 1e-300:
            s2 = 1e-300
    return nll


@njit(cache=True, nogil=True)
def garch_nll_grad(r: np.ndarray, alpha: float, beta: float) -> tuple[float, float, float]:
    """garch_nll for unit variance (returns already scaled) and its exact gradient in (alpha, beta).

    With omega = 1 - a - b: d s2_t/da = -1 + r_(t-1)^2 + b d s2_(t-1)/da and d s2_t/db = -1 + s2_(t-1)
    + b d s2_(t-1)/db; d nll = 0.5 sum (1/s2 - r^2/s2^2) d s2. Analytic gradients cut the optimizer's
    evaluations about threefold against finite differences.
    """
    omega = 1.0 - alpha - beta
    s2 = 1.0
    da = 0.0
    db = 0.0
    nll = 0.0
    ga = 0.0
    gb = 0.0
    for t in range(r.shape[0]):
        rt = r[t]
        if np.isnan(rt):
            da, db = -1.0 + s2 + (alpha + beta) * da, -1.0 + s2 + (alpha + beta) * db
            s2 = omega + (alpha + beta) * s2
            continue
        r2 = rt * rt
        w = 0.5 * (1.0 / s2 - r2 / (s2 * s2))
        nll += 0.5 * (np.log(s2) + r2 / s2)
        ga += w * da
        gb += w * db
        da, db = -1.0 + r2 + beta * da, -1.0 + s2 + beta * db
        s2 = omega + alpha * r2 + beta * s2
        if s2 < 1e-300:
            s2 = 1e-300
    return nll, ga, gb


@njit(cache=True, nogil=True)
def garch_windowed_filter(
    r: np.ndarray,
    block_lo: np.ndarray,
    block_hi: np.ndarray,
    alphas: np.ndarray,
    betas: np.ndarray,
    variances: np.ndarray,
    window: int,
) -> np.ndarray:
    """Conditional variance s2_t of each block's rows with that block's parameters.

    s2_t is the GARCH recursion started ``window`` bars back at the unconditional variance:
    s2_t = omega (1-b^W)/(1-b) + a sum_{k<W} b^k r_{t-1-k}^2 + b^W var. A NaN return counts as var
    (its expectation). Rows of blocks with NaN parameters stay NaN.
    """
    n = r.shape[0]
    out = np.full(n, np.nan)
    for b in range(block_lo.shape[0]):
        a = alphas[b]
        be = betas[b]
        v = variances[b]
        if np.isnan(a) or np.isnan(be) or np.isnan(v):
            continue
        lo = block_lo[b]
        hi = block_hi[b]
        omega = v * (1.0 - a - be)
        bw = be**window
        const = omega * (1.0 - bw) / (1.0 - be) + bw * v
        start = lo - window
        if start < 0:
            start = 0
        s = 0.0  # sum_{k<W} b^k q_{t-1-k}, built from `start`; exact once t - start >= window
        for t in range(start, hi):
            if t >= lo:
                out[t] = const + a * s
            q = r[t] * r[t] if not np.isnan(r[t]) else v
            s = be * s + q
            if t - window >= start:
                qo = r[t - window] * r[t - window] if not np.isnan(r[t - window]) else v
                s -= bw * qo
    return out


@njit(cache=True, nogil=True)
def _project(a: float, b: float) -> tuple[float, float]:
    a = min(max(a, 1e-6), 0.5)
    b = min(max(b, 0.0), 0.9989)
    if a + b > 0.9998:
        b = 0.9998 - a
    return a, b


@njit(cache=True, nogil=True)
def garch_fit_newton(z: np.ndarray, a0: float, b0: float, max_iter: int) -> tuple[float, float, float]:
    """Minimize garch_nll_grad over the stationary box by projected Newton steps with backtracking.

    The Hessian is a finite difference of the exact gradient (two extra passes per iteration); when it
    is not positive definite the step falls back to the normalized negative gradient. Two parameters
    make this converge in ~10 iterations, and running it all in numba avoids scipy's per-call overhead
    (hundreds of refits a year). Returns (alpha, beta, nll).
    """
    a, b = _project(a0, b0)
    f, ga, gb = garch_nll_grad(z, a, b)
    for _ in range(max_iter):
        ha = 1e-6 if a + 1e-6 + b <= 0.9998 and a + 1e-6 <= 0.5 else -1e-6
        hb = 1e-6 if a + b + 1e-6 <= 0.9989 else -1e-6
        _, gaa, gba = garch_nll_grad(z, a + ha, b)
        _, gab, gbb = garch_nll_grad(z, a, b + hb)
        h00 = (gaa - ga) / ha
        h11 = (gbb - gb) / hb
        h01 = 0.5 * ((gab - ga) / hb + (gba - gb) / ha)
        det = h00 * h11 - h01 * h01
        if h00 > 0 and det > 0:
            da = -(h11 * ga - h01 * gb) / det
            db = -(-h01 * ga + h00 * gb) / det
        else:
            norm = np.sqrt(ga * ga + gb * gb) + 1e-300
            da = -0.05 * ga / norm
            db = -0.05 * gb / norm
        t = 1.0
        accepted = False
        na, nb, nf, nga, ngb = a, b, f, ga, gb
        for _ls in range(10):
            na, nb = _project(a + t * da, b + t * db)
            nf, nga, ngb = garch_nll_grad(z, na, nb)
            if nf < f:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        moved = max(abs(na - a), abs(nb - b))
        gain = f - nf
        a, b, f, ga, gb = na, nb, nf, nga, ngb
        if gain < 1e-7 * (abs(f) + 1.0) or moved < 1e-6:
            break
        if a <= 2e-6 and ga > 0:
            # no ARCH effect: the variance is constant whatever beta is (beta is not identified), so
            # the flat likelihood would only make the search crawl; stop at the boundary
            break
    return a, b, f


@njit(cache=True, nogil=True)
def rolling_ols_slope(x: np.ndarray, y: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """OLS slope of y on x over the last ``window`` bars (pairs with both values present), one pass.

    Running sums of x, y, x^2 and xy are updated in O(1) per bar (polars would need four rolling
    passes plus temporaries for the two covariances).
    """
    n = x.shape[0]
    out = np.empty(n)
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    sxy = 0.0
    c = 0
    for t in range(n):
        xt = x[t]
        yt = y[t]
        if not (np.isnan(xt) or np.isnan(yt)):
            sx += xt
            sy += yt
            sxx += xt * xt
            sxy += xt * yt
            c += 1
        if t >= window:
            xo = x[t - window]
            yo = y[t - window]
            if not (np.isnan(xo) or np.isnan(yo)):
                sx -= xo
                sy -= yo
                sxx -= xo * xo
                sxy -= xo * yo
                c -= 1
        out[t] = np.nan
        if c >= min_count and c > 1:
            mx = sx / c
            var = sxx / c - mx * mx
            if var > 1e-12 * (sxx / c + 1e-300):
                out[t] = (sxy / c - mx * (sy / c)) / var
    return out

"""The incremental program a compiled feature set runs once per bar: a small numba interpreter.

A program is a list of nodes in dependency order (kimp.streaming.compiler builds it from the feature
definitions). Each node produces one value per bar, held as (value, is-null); a node whose history a later
node reads (a shift, a window) keeps a ring of its last values. One ``step`` computes every node for the
new bar; ``commit=False`` computes without keeping anything (a provisional tick row).

Semantics are polars' (kimp.features.expr): nulls propagate through arithmetic and comparisons and are
skipped by windows; NaN is a value that poisons windows and compares above every number; a null
condition takes the ``otherwise`` branch; ``&``/``|`` use three-valued logic. Windows carry running sums
updated from their ring (a value entering, the one leaving: O(1) a bar); a standard deviation uses its
shifted running sums only while their rounding bound is under 1e-8 of the variance and is otherwise
computed exactly (two passes over the ring); windowed EMAs carry the same running sums as
kernels.windowed_ewm. A value never depends on where the stream started beyond the declared window (up
to that bounded rounding).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# opcodes
CONST, INPUT = 0, 1
ADD, SUB, MUL, DIV, POW = 2, 3, 4, 5, 6
NEG, ABS, SQRT, LOG, SIN, COS = 7, 8, 9, 10, 11, 12
GT, GE, LT, LE, EQ, NE = 13, 14, 15, 16, 17, 18
AND, OR, NOT = 19, 20, 21
IS_NULL, IS_NOT_NULL, FILL_NULL, FILL_NAN, CLIP, CAST_F32 = 22, 23, 24, 25, 26, 27
WHEN, MAX2, TOTAL_SECONDS = 28, 29, 30
SHIFT, DIFF = 31, 32
R_SUM, R_MEAN, R_STD, R_MIN, R_MAX = 33, 34, 35, 36, 37
EWM, OLS, NDTR, MQUANT, GARCH = 38, 39, 40, 41, 42
IDENT = 43
_EPS = 2.3e-16  # a little over the float64 unit roundoff (2**-53 = 1.1e-16), doubled for safety

BINARY = {"add": ADD, "sub": SUB, "mul": MUL, "div": DIV, "pow": POW}
COMPARE = {"gt": GT, "ge": GE, "lt": LT, "le": LE, "eq": EQ, "ne": NE}
UNARY = {"neg": NEG, "abs": ABS, "sqrt": SQRT, "log": LOG, "sin": SIN, "cos": COS}
ROLLING = {
    "rolling_sum": R_SUM,
    "rolling_mean": R_MEAN,
    "rolling_std": R_STD,
    "rolling_min": R_MIN,
    "rolling_max": R_MAX,
}


@njit(cache=True, nogil=True)
def _cmp(a: float, b: float) -> int:
    """Polars' total order: NaN equals NaN and is above every number."""
    an = math.isnan(a)
    bn = math.isnan(b)
    if an and bn:
        return 0
    if an:
        return 1
    if bn:
        return -1
    if a < b:
        return -1
    if a > b:
        return 1
    return 0


@njit(cache=True, nogil=True)
def _ring_get(rv, rn, off, length, t, lag, out):
    """Value of a ring ``lag`` bars back into out[0] (value) / out[1] (1 = null); null before the stream."""
    if lag >= length or t - lag < 0:
        out[0] = np.nan
        out[1] = 1.0
        return
    p = off + (t - lag) % length
    out[0] = rv[p]
    out[1] = 1.0 if rn[p] else 0.0


@njit(cache=True, nogil=True)
def _quantile_sorted(v: np.ndarray, n: int, q: float) -> float:
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = lo + 1 if lo + 1 < n else lo
    frac = pos - lo
    if frac == 0.0:
        return v[lo]
    return v[lo] + (v[hi] - v[lo]) * frac


@njit(cache=True, nogil=True, inline="always")
def ip2_least(fp2, i):
    """A window's minimum non-null count (kept in fp2 for the window ops)."""
    return fp2[i]


@njit(cache=True, nogil=True)
def _std_exact(x0, n0, rv, rn, off, length, t, w, ddof, state, si):
    """Two-pass standard deviation of the non-null values among the last ``w`` (the newest is ``x0``/``n0``,
    the others are read from the ring); rebases the running sums of the R_STD node at ``state[si:]`` on
    the window's mean."""
    cnt = 0
    s_sum = 0.0
    for k in range(w):
        if t - k < 0:
            break
        if k == 0:
            x = x0
            xn = n0
        else:
            p = off + (t - k) % length
            x = rv[p]
            xn = rn[p]
        if xn:
            continue
        cnt += 1
        s_sum += x
    m = s_sum / cnt
    ss = 0.0
    s1 = 0.0
    s_abs = 0.0
    for k in range(w):
        if t - k < 0:
            break
        if k == 0:
            x = x0
            xn = n0
        else:
            p = off + (t - k) % length
            x = rv[p]
            xn = rn[p]
        if not xn:
            d = x - m
            ss += d * d
            s1 += d
            s_abs += abs(d)
    state[si] = m
    state[si + 1] = s1
    state[si + 2] = ss
    # worst-case rounding of a recursive sum of cnt terms
    state[si + 5] = _EPS * cnt * s_abs
    state[si + 6] = _EPS * cnt * ss
    return math.sqrt(ss / (cnt - ddof))


@njit(cache=True, nogil=True)
def step(
    t,
    op,
    a,
    b,
    c,
    ip,
    ip2,
    fp,
    fp2,
    ns,
    ring_of,
    ring_off,
    ring_len,
    rv,
    rn,
    state,
    inputs,
    input_null,
    val,
    nul,
    active,
    commit,
    saved_v,
    saved_n,
    saved_state,
):
    """Compute every active node for bar ``t`` (bars counted from the stream's first)."""
    n = op.shape[0]
    tmp = np.empty(2)
    q_key = np.full(5, -1, np.int64)  # MQUANT: the series whose sorted marks q_sorted holds (this bar)
    q_step = -1.0
    q_sorted = np.empty(0)
    n_saved = 0
    if not commit:  # save the state of the nodes this step computes (a tick's are a fraction of all)
        for i in range(n):
            if active[i] and ns[i] > 0:
                for k in range(ip2[i], ip2[i] + ns[i]):
                    saved_state[k] = state[k]
    for i in range(n):
        if not active[i]:
            continue
        o = op[i]
        v = np.nan
        z = False
        if o == CONST:
            v = fp[i]
            z = fp2[i] > 0.0
        elif o == INPUT:
            v = inputs[ip[i]]
            z = input_null[ip[i]]
        elif o == IDENT:
            v = val[a[i]]
            z = nul[a[i]]
        elif o <= POW:
            x = val[a[i]]
            y = val[b[i]]
            z = nul[a[i]] or nul[b[i]]
            if not z:
                if o == ADD:
                    v = x + y
                elif o == SUB:
                    v = x - y
                elif o == MUL:
                    v = x * y
                elif o == DIV:
                    if y == 0.0:
                        if x == 0.0 or math.isnan(x):
                            v = np.nan
                        else:
                            v = math.copysign(np.inf, x) * math.copysign(1.0, y)
                    else:
                        v = x / y
                else:
                    if x < 0.0 and y != math.floor(y):
                        v = np.nan
                    elif x == 0.0 and y < 0.0:
                        v = np.inf
                    else:
                        v = x**y
        elif o <= COS:
            x = val[a[i]]
            z = nul[a[i]]
            if not z:
                if o == NEG:
                    v = -x
                elif o == ABS:
                    v = abs(x)
                elif o == SQRT:
                    v = math.sqrt(x) if x >= 0.0 else np.nan
                elif o == LOG:
                    if x > 0.0:
                        v = math.log(x)
                    elif x == 0.0:
                        v = -np.inf
                    else:
                        v = np.nan
                elif o == SIN:
                    v = math.sin(x)
                else:
                    v = math.cos(x)
        elif o <= NE:
            z = nul[a[i]] or nul[b[i]]
            if not z:
                r = _cmp(val[a[i]], val[b[i]])
                if o == GT:
                    v = 1.0 if r > 0 else 0.0
                elif o == GE:
                    v = 1.0 if r >= 0 else 0.0
                elif o == LT:
                    v = 1.0 if r < 0 else 0.0
                elif o == LE:
                    v = 1.0 if r <= 0 else 0.0
                elif o == EQ:
                    v = 1.0 if r == 0 else 0.0
                else:
                    v = 1.0 if r != 0 else 0.0
        elif o in (AND, OR):
            xa, xn = val[a[i]], nul[a[i]]
            ya, yn = val[b[i]], nul[b[i]]
            if o == AND:
                if (not xn and xa == 0.0) or (not yn and ya == 0.0):
                    v = 0.0
                elif xn or yn:
                    z = True
                else:
                    v = 1.0
            else:
                if (not xn and xa != 0.0) or (not yn and ya != 0.0):
                    v = 1.0
                elif xn or yn:
                    z = True
                else:
                    v = 0.0
        elif o == NOT:
            z = nul[a[i]]
            v = 0.0 if val[a[i]] != 0.0 else 1.0
        elif o == IS_NULL:
            v = 1.0 if nul[a[i]] else 0.0
        elif o == IS_NOT_NULL:
            v = 0.0 if nul[a[i]] else 1.0
        elif o == FILL_NULL:
            if nul[a[i]]:
                v = fp[i]
                z = fp2[i] > 0.0
            else:
                v = val[a[i]]
        elif o == FILL_NAN:
            v = val[a[i]]
            z = nul[a[i]]
            if not z and math.isnan(v):
                v = fp[i]
                z = fp2[i] > 0.0
        elif o == CLIP:
            v = val[a[i]]
            z = nul[a[i]]
            if not z and not math.isnan(v):
                if ip[i] == 1 and v < fp[i]:
                    v = fp[i]
                if ip2[i] == 1 and v > fp2[i]:
                    v = fp2[i]
        elif o == CAST_F32:
            v = val[a[i]]
            z = nul[a[i]]
            if not z:
                v = float(np.float32(v))
        elif o == WHEN:
            if not nul[a[i]] and val[a[i]] != 0.0:
                v = val[b[i]]
                z = nul[b[i]]
            else:
                v = val[c[i]]
                z = nul[c[i]]
        elif o == MAX2:
            xa, xn = val[a[i]], nul[a[i]]
            ya, yn = val[b[i]], nul[b[i]]
            if xn and yn:
                z = True
            elif xn:
                v = ya
            elif yn:
                v = xa
            elif math.isnan(xa):
                v = ya
            elif math.isnan(ya):
                v = xa
            else:
                v = max(xa, ya)
        elif o == TOTAL_SECONDS:
            z = nul[a[i]]
            if not z:
                v = float(math.trunc(val[a[i]] / 1e6))
        elif o in (SHIFT, DIFF):
            r = ring_of[a[i]]
            _ring_get(rv, rn, ring_off[r], ring_len[r], t, ip[i], tmp)
            if o == SHIFT:
                v = tmp[0]
                z = tmp[1] > 0.0
            else:
                z = nul[a[i]] or tmp[1] > 0.0
                if not z:
                    v = val[a[i]] - tmp[0]
        elif o in (R_SUM, R_MEAN):
            # state at ip2[i]: [sum of the finite values, non-null count, NaN count] of the window
            si = ip2[i]
            w = ip[i]
            x = val[a[i]]
            if not nul[a[i]]:
                state[si + 1] += 1.0
                if math.isnan(x):
                    state[si + 2] += 1.0
                else:
                    state[si] += x
            r = ring_of[a[i]]
            _ring_get(rv, rn, ring_off[r], ring_len[r], t, w, tmp)
            if tmp[1] == 0.0:
                state[si + 1] -= 1.0
                if math.isnan(tmp[0]):
                    state[si + 2] -= 1.0
                else:
                    state[si] -= tmp[0]
            cnt = state[si + 1]
            if cnt < ip2_least(fp2, i) or cnt <= 0.0:
                z = True
            elif state[si + 2] > 0.0:
                v = np.nan
            elif o == R_SUM:
                v = state[si]
            else:
                v = state[si] / cnt
        elif o == R_STD:
            # state at ip2[i]: [K, S1, S2, count, NaN count, err S1, err S2, newest value, bar its run of
            # equal values began, memo value, memo count, memo result]: sliding sums of the window's finite
            # values shifted by K (S1 = sum(x - K), S2 = sum((x - K)^2)) with bounds on their accumulated
            # rounding. A sliding update loses the precision of a small variance once large
            # deviations have left the window, so the sliding variance is used only while its error bound
            # is under 1e-8 of it; otherwise (a flat or nearly flat window), and once per window length
            # (staggered across nodes), the exact two-pass over the ring is computed and the sums are
            # rebased on its mean. A window of one repeated value (a flat input: a daily macro series, a
            # stale price) reuses the two passes' result while the value and count stay the same.
            si = ip2[i]
            w = ip[i]
            r = ring_of[a[i]]
            off = ring_off[r]
            length = ring_len[r]
            x = val[a[i]]
            if not nul[a[i]]:
                if x != state[si + 7]:  # (NaN too) the newest run of equal values starts here
                    state[si + 7] = x
                    state[si + 8] = t
                state[si + 3] += 1.0
                if math.isnan(x):
                    state[si + 4] += 1.0
                else:
                    d = x - state[si]
                    state[si + 1] += d
                    state[si + 2] += d * d
                    state[si + 5] += _EPS * (abs(state[si + 1]) + abs(d))
                    state[si + 6] += _EPS * (abs(state[si + 2]) + d * d)
            _ring_get(rv, rn, off, length, t, w, tmp)
            if tmp[1] == 0.0:
                state[si + 3] -= 1.0
                if math.isnan(tmp[0]):
                    state[si + 4] -= 1.0
                else:
                    d = tmp[0] - state[si]
                    state[si + 1] -= d
                    state[si + 2] -= d * d
                    state[si + 5] += _EPS * (abs(state[si + 1]) + abs(d))
                    state[si + 6] += _EPS * (abs(state[si + 2]) + d * d)
            cnt = state[si + 3]
            ddof = fp[i]
            if cnt < ip2_least(fp2, i) or cnt <= 0.0 or cnt - ddof <= 0:
                z = True
            elif state[si + 4] > 0.0:
                v = np.nan
            else:
                s1 = state[si + 1]
                s2 = state[si + 2]
                m1 = s1 / cnt
                ssq = s2 - s1 * m1
                bound = state[si + 6] + 2.0 * abs(m1) * state[si + 5] + _EPS * (abs(s2) + abs(s1 * m1))
                if ssq > 1e8 * bound and (t + i * 7919) % w != 0:
                    v = math.sqrt(ssq / (cnt - ddof))
                elif state[si + 8] <= t - w + 1 and state[si + 9] == state[si + 7] and state[si + 10] == cnt:
                    # every value in the window equals the last one, with the count of the last exact pass
                    # over such a window: the two passes would add the same numbers again
                    v = state[si + 11]
                else:
                    v = _std_exact(val[a[i]], nul[a[i]], rv, rn, off, length, t, w, ddof, state, si)
                    if state[si + 8] <= t - w + 1:
                        state[si + 9] = state[si + 7]
                        state[si + 10] = cnt
                        state[si + 11] = v
        elif o in (R_MIN, R_MAX):
            # state: [head, size, non-null count, NaN count, deque of bar numbers (w + 1 slots)]: the
            # window's candidates in bar order, values monotone (decreasing for a max), read from the ring
            si = ip2[i]
            w = ip[i]
            cap = w + 1
            r = ring_of[a[i]]
            off = ring_off[r]
            length = ring_len[r]
            head = int(state[si])
            size = int(state[si + 1])
            while size > 0 and int(state[si + 4 + head]) <= t - w:  # left the window
                head = (head + 1) % cap
                size -= 1
            x = val[a[i]]
            if not nul[a[i]]:
                state[si + 2] += 1.0
                if math.isnan(x):
                    state[si + 3] += 1.0
                else:
                    while size > 0:
                        back = int(state[si + 4 + (head + size - 1) % cap])
                        bv = rv[off + back % length]
                        if (o == R_MAX and bv <= x) or (o == R_MIN and bv >= x):
                            size -= 1
                        else:
                            break
                    state[si + 4 + (head + size) % cap] = t
                    size += 1
            _ring_get(rv, rn, off, length, t, w, tmp)
            if tmp[1] == 0.0:
                state[si + 2] -= 1.0
                if math.isnan(tmp[0]):
                    state[si + 3] -= 1.0
            state[si] = head
            state[si + 1] = size
            cnt = state[si + 2]
            if cnt < ip2_least(fp2, i) or cnt <= 0.0:
                z = True
            elif state[si + 3] > 0.0:
                v = np.nan
            else:
                v = rv[off + int(state[si + 4 + head]) % length] if size > 0 else x
        elif o == EWM:
            # state: [num, den, cnt] at ip2[i]; the kernel's running sums (kernels.windowed_ewm)
            si = ip2[i]
            d = 1.0 - fp[i]
            w = ip[i]
            dw = d**w
            num = state[si] * d
            den = state[si + 1] * d
            cn = state[si + 2]
            x = val[a[i]]
            if not nul[a[i]] and not math.isnan(x):
                num += x
                den += 1.0
                cn += 1.0
            r = ring_of[a[i]]
            _ring_get(rv, rn, ring_off[r], ring_len[r], t, w, tmp)
            if tmp[1] == 0.0 and not math.isnan(tmp[0]):
                num -= dw * tmp[0]
                den -= dw
                cn -= 1.0
            state[si] = num
            state[si + 1] = den
            state[si + 2] = cn
            if cn >= fp2[i] and den > 0.0:
                v = num / den
                if math.isnan(v):
                    z = True
            else:
                z = True
        elif o == OLS:
            # state: [sx, sy, sxx, sxy, count]: kernels.rolling_ols_slope's running sums
            si = ip2[i]
            w = ip[i]
            xx = val[a[i]]
            yy = val[b[i]]
            if not (nul[a[i]] or nul[b[i]] or math.isnan(xx) or math.isnan(yy)):
                state[si] += xx
                state[si + 1] += yy
                state[si + 2] += xx * xx
                state[si + 3] += xx * yy
                state[si + 4] += 1.0
            rx = ring_of[a[i]]
            ry = ring_of[b[i]]
            _ring_get(rv, rn, ring_off[rx], ring_len[rx], t, w, tmp)
            xo, xon = tmp[0], tmp[1]
            _ring_get(rv, rn, ring_off[ry], ring_len[ry], t, w, tmp)
            yo, yon = tmp[0], tmp[1]
            if xon == 0.0 and yon == 0.0 and not (math.isnan(xo) or math.isnan(yo)):
                state[si] -= xo
                state[si + 1] -= yo
                state[si + 2] -= xo * xo
                state[si + 3] -= xo * yo
                state[si + 4] -= 1.0
            cnt = state[si + 4]
            z = True
            if cnt >= c[i] and cnt > 1:
                mxx = state[si] / cnt
                var = state[si + 2] / cnt - mxx * mxx
                if var > 1e-12 * (state[si + 2] / cnt + 1e-300):
                    v = (state[si + 3] / cnt - mxx * (state[si + 1] / cnt)) / var
                    z = math.isnan(v)
        elif o == NDTR:
            x = val[a[i]]
            v = np.nan if nul[a[i]] or math.isnan(x) else 0.5 * math.erfc(-x / math.sqrt(2.0))
        elif o == MQUANT:
            # state at ip2[i]: [marks seen, last value, last is null, bars since the last mark, hold,
            # ring of the last ip[i] marks' values (NaN = null)]; c[i] = min samples, fp = q, fp2 = step
            si = ip2[i]
            w = ip[i]
            if not nul[a[i]] and math.floor(val[a[i]] / 1e6) % fp2[i] == 0.0:
                seen = int(state[si])
                x = val[b[i]]
                state[si + 5 + seen % w] = np.nan if nul[b[i]] else x
                seen += 1
                state[si] = seen
                # the quantiles of one series (same marks, values, window and minimum) share one sort
                same = (
                    q_key[0] == a[i]
                    and q_key[1] == b[i]
                    and q_key[2] == w
                    and q_key[3] == c[i]
                    and q_key[4] == seen
                    and q_step == fp2[i]
                )
                if not same:
                    m = min(seen, w)
                    buf = np.empty(m)
                    cnt = 0
                    for k in range(m):
                        y = state[si + 5 + k]
                        if not math.isnan(y):
                            buf[cnt] = y
                            cnt += 1
                    q_sorted = np.sort(buf[:cnt])
                    q_key[0], q_key[1], q_key[2], q_key[3], q_key[4] = a[i], b[i], w, c[i], seen
                    q_step = fp2[i]
                cnt = q_sorted.shape[0]
                z = cnt < c[i] or cnt == 0
                if not z:
                    v = _quantile_sorted(q_sorted, cnt, fp[i])
                    z = math.isnan(v)
                state[si + 1] = v
                state[si + 2] = 1.0 if z else 0.0
                state[si + 3] = 0.0
            else:
                since = state[si + 3] + 1.0
                state[si + 3] = since
                if state[si] > 0 and since <= state[si + 4] and state[si + 2] == 0.0:
                    v = state[si + 1]
                else:
                    z = True
        elif o == GARCH:
            # group parameters at fp2[i] in state: [alpha, beta, variance, valid, version]; this node's own
            # state at ip2[i]: [S, version S was built with], S = sum_{k<W} beta^k q_(t-1-k) as in
            # kernels.garch_windowed_filter (rebuilt from the ring when the parameters change)
            g = int(fp2[i])
            al = state[g]
            be = state[g + 1]
            var = state[g + 2]
            w = ip[i]
            if state[g + 3] == 0.0:
                z = True
            elif c[i] == 1:
                v = al + be
            elif c[i] == 2:
                v = var
            else:
                si = ip2[i]
                r = ring_of[b[i]]
                bw = be**w
                if state[si + 1] != state[g + 4]:
                    s_sum = 0.0
                    bk = 1.0
                    for k in range(w):
                        if t - 1 - k < 0:
                            break
                        _ring_get(rv, rn, ring_off[r], ring_len[r], t, 1 + k, tmp)
                        q = var if (tmp[1] > 0.0 or math.isnan(tmp[0])) else tmp[0] * tmp[0]
                        s_sum += bk * q
                        bk *= be
                    state[si] = s_sum
                    state[si + 1] = state[g + 4]
                else:
                    # S_t = b S_(t-1) + q_(t-1) - b^W q_(t-1-W)
                    s_sum = be * state[si]
                    if t - 1 >= 0:
                        _ring_get(rv, rn, ring_off[r], ring_len[r], t, 1, tmp)
                        s_sum += var if (tmp[1] > 0.0 or math.isnan(tmp[0])) else tmp[0] * tmp[0]
                    if t - 1 - w >= 0:
                        _ring_get(rv, rn, ring_off[r], ring_len[r], t, 1 + w, tmp)
                        s_sum -= bw * (var if (tmp[1] > 0.0 or math.isnan(tmp[0])) else tmp[0] * tmp[0])
                    state[si] = s_sum
                omega = var * (1.0 - al - be)
                v = omega * (1.0 - bw) / (1.0 - be) + bw * var + al * s_sum
        val[i] = v
        nul[i] = z
        r = ring_of[i]
        if r >= 0:
            p = ring_off[r] + t % ring_len[r]
            if not commit:
                saved_v[n_saved] = rv[p]
                saved_n[n_saved] = rn[p]
                n_saved += 1
            rv[p] = v
            rn[p] = z
    if not commit:
        # undo: ring slots in reverse order of writing, then the saved state
        k = n_saved
        for i in range(n - 1, -1, -1):
            if not active[i]:
                continue
            r = ring_of[i]
            if r >= 0:
                k -= 1
                p = ring_off[r] + t % ring_len[r]
                rv[p] = saved_v[k]
                rn[p] = saved_n[k]
        for i in range(n):
            if active[i] and ns[i] > 0:
                for k in range(ip2[i], ip2[i] + ns[i]):
                    state[k] = saved_state[k]


@njit(cache=True, nogil=True)
def run(
    t0,
    op,
    a,
    b,
    c,
    ip,
    ip2,
    fp,
    fp2,
    ns,
    ring_of,
    ring_off,
    ring_len,
    rv,
    rn,
    state,
    inputs,
    input_null,
    val,
    nul,
    active,
):
    """``step`` over many bars at once (a warm-up): row k of ``inputs`` is bar t0 + k."""
    dummy_v = np.empty(1)
    dummy_n = np.empty(1, np.bool_)
    dummy_s = np.empty(1)
    for k in range(inputs.shape[0]):
        step(
            t0 + k,
            op,
            a,
            b,
            c,
            ip,
            ip2,
            fp,
            fp2,
            ns,
            ring_of,
            ring_off,
            ring_len,
            rv,
            rn,
            state,
            inputs[k],
            input_null[k],
            val,
            nul,
            active,
            True,
            dummy_v,
            dummy_n,
            dummy_s,
        )

"""Feature expressions: one definition, two executions.

Families write features with this module's ``col``, ``lit``, ``when`` and ``max_horizontal`` and the
polars method names they know (``shift``, ``rolling_mean``, ``log``, ``clip``, ``is_not_null`` ...).
An ``Expr`` records the operation graph; ``to_polars()`` lowers it to exactly the polars expression the
family used to build (the batch ``features`` asset runs that), and kimp.streaming.compiler compiles the
same graph into an incremental program that computes each new bar in microseconds. Batch and live
values therefore come from one definition and cannot drift apart (tests/test_streaming_parity.py).

Recursive and numba-backed operations are ``Expr`` nodes too (``ewm``, ``rolling_ols``, ``ndtr``,
``marked_quantile``, ``garch``): their batch lowering calls the numba kernels of kimp.features.kernels,
their streaming form is written against the same kernels' definitions.

Null semantics are polars': null propagates through arithmetic and comparisons, a null condition takes
the ``otherwise`` branch, rolling windows skip nulls (``min_samples`` counts the non-null values), NaN is
a value (it poisons windows and compares greater than any number) until ``fill_nan(None)`` makes it null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

Scalar = int | float | bool | None


class Expr:
    """One node of a feature's operation graph (immutable)."""

    __slots__ = ("_key", "args", "kw", "op")

    def __init__(self, op: str, args: tuple[Expr, ...] = (), **kw: Any) -> None:
        self.op = op
        self.args = args
        self.kw = kw
        self._key: tuple | None = None

    # ------------------------------------------------------------------ identity (== is the DSL's)
    def key(self) -> tuple:
        """Structural identity: equal keys compute equal values (used to share nodes)."""
        if self._key is None:
            kw = tuple(sorted((k, _hashable(v)) for k, v in self.kw.items()))
            self._key = (self.op, kw, tuple(a.key() for a in self.args))
        return self._key

    def __hash__(self) -> int:
        return hash(self.key())

    def __bool__(self) -> bool:
        raise TypeError("an Expr has no truth value (use & | ~ and when/then)")

    def __repr__(self) -> str:
        if self.op == "col":
            return f"col({self.kw['name']!r})"
        if self.op == "lit":
            return repr(self.kw["value"])
        inner = ", ".join(repr(a) for a in self.args)
        params = ", ".join(f"{k}={v!r}" for k, v in self.kw.items() if not callable(v))
        return f"{self.op}({inner}{', ' if inner and params else ''}{params})"

    # ------------------------------------------------------------------ operators
    def _bin(self, op: str, other: Any, *, reflected: bool = False) -> Expr:
        o = _expr(other)
        return Expr(op, (o, self) if reflected else (self, o))

    def __add__(self, o: Any) -> Expr:
        return self._bin("add", o)

    def __radd__(self, o: Any) -> Expr:
        return self._bin("add", o, reflected=True)

    def __sub__(self, o: Any) -> Expr:
        return self._bin("sub", o)

    def __rsub__(self, o: Any) -> Expr:
        return self._bin("sub", o, reflected=True)

    def __mul__(self, o: Any) -> Expr:
        return self._bin("mul", o)

    def __rmul__(self, o: Any) -> Expr:
        return self._bin("mul", o, reflected=True)

    def __truediv__(self, o: Any) -> Expr:
        return self._bin("div", o)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._bin("div", o, reflected=True)

    def __pow__(self, o: Any) -> Expr:
        return self._bin("pow", o)

    def __neg__(self) -> Expr:
        return Expr("neg", (self,))

    def __gt__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("gt", o)

    def __ge__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("ge", o)

    def __lt__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("lt", o)

    def __le__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("le", o)

    def __eq__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("eq", o)

    def __ne__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("ne", o)

    def __and__(self, o: Any) -> Expr:
        return self._bin("and", o)

    def __rand__(self, o: Any) -> Expr:
        return self._bin("and", o, reflected=True)

    def __or__(self, o: Any) -> Expr:
        return self._bin("or", o)

    def __ror__(self, o: Any) -> Expr:
        return self._bin("or", o, reflected=True)

    def __invert__(self) -> Expr:
        return Expr("not", (self,))

    # ------------------------------------------------------------------ polars methods
    def shift(self, n: int = 1) -> Expr:
        return Expr("shift", (self,), n=int(n))

    def diff(self, n: int = 1) -> Expr:
        return Expr("diff", (self,), n=int(n))

    def log(self) -> Expr:
        return Expr("log", (self,))

    def sqrt(self) -> Expr:
        return Expr("sqrt", (self,))

    def abs(self) -> Expr:
        return Expr("abs", (self,))

    def sin(self) -> Expr:
        return Expr("sin", (self,))

    def cos(self) -> Expr:
        return Expr("cos", (self,))

    def pow(self, exponent: Any) -> Expr:
        return Expr("pow", (self, _expr(exponent)))

    def clip(self, lower_bound: Scalar = None, upper_bound: Scalar = None) -> Expr:
        return Expr("clip", (self,), lower=lower_bound, upper=upper_bound)

    def cast(self, dtype: Any) -> Expr:
        return Expr("cast", (self,), dtype=dtype)

    def is_null(self) -> Expr:
        return Expr("is_null", (self,))

    def is_not_null(self) -> Expr:
        return Expr("is_not_null", (self,))

    def fill_null(self, value: Scalar) -> Expr:
        return Expr("fill_null", (self,), value=value)

    def fill_nan(self, value: Scalar) -> Expr:
        return Expr("fill_nan", (self,), value=value)

    def alias(self, name: str) -> Expr:
        return self  # names are given where a column is made (registry, build)

    def _rolling(self, how: str, window_size: int, min_samples: int | None, **extra: Any) -> Expr:
        return Expr(f"rolling_{how}", (self,), window=int(window_size), min_samples=min_samples, **extra)

    def rolling_mean(self, window_size: int, min_samples: int | None = None) -> Expr:
        return self._rolling("mean", window_size, min_samples)

    def rolling_sum(self, window_size: int, min_samples: int | None = None) -> Expr:
        return self._rolling("sum", window_size, min_samples)

    def rolling_std(self, window_size: int, min_samples: int | None = None, ddof: int = 1) -> Expr:
        return self._rolling("std", window_size, min_samples, ddof=int(ddof))

    def rolling_min(self, window_size: int, min_samples: int | None = None) -> Expr:
        return self._rolling("min", window_size, min_samples)

    def rolling_max(self, window_size: int, min_samples: int | None = None) -> Expr:
        return self._rolling("max", window_size, min_samples)

    @property
    def dt(self) -> _Dt:
        return _Dt(self)

    # ------------------------------------------------------------------ when/then chains
    def otherwise(self, value: Any) -> Expr:
        if self.op != "when" or self.kw.get("closed"):
            raise TypeError("otherwise() follows when(...).then(...)")
        return _close_chain(self, _expr(value))

    def when(self, condition: Any) -> _When:
        if self.op != "when" or self.kw.get("closed"):
            raise TypeError("when() chains after when(...).then(...)")
        return _When(_expr(condition), parent=self)

    def then(self, value: Any) -> Expr:
        raise TypeError("then() follows when(...)")

    # ------------------------------------------------------------------ lowering
    def to_polars(self) -> pl.Expr:
        """The polars expression this node stands for (memoized per call tree)."""
        return _lower(self, {})


class _Dt:
    def __init__(self, e: Expr) -> None:
        self.e = e

    def hour(self) -> Expr:
        return Expr("dt_field", (self.e,), field="hour")

    def minute(self) -> Expr:
        return Expr("dt_field", (self.e,), field="minute")

    def weekday(self) -> Expr:
        return Expr("dt_field", (self.e,), field="weekday")

    def convert_time_zone(self, tz: str) -> Expr:
        return Expr("dt_tz", (self.e,), tz=tz)

    def total_seconds(self) -> Expr:
        return Expr("dt_total_seconds", (self.e,))


class _When:
    def __init__(self, condition: Expr, parent: Expr | None = None) -> None:
        self.condition = condition
        self.parent = parent

    def then(self, value: Any) -> Expr:
        branch = Expr("when", (self.condition, _expr(value), _NULL), closed=False)
        if self.parent is None:
            return branch
        # when(a).then(x).when(b).then(y) == when(a).then(x).otherwise(when(b).then(y))
        return _replace_tail(self.parent, branch)


def _replace_tail(chain: Expr, branch: Expr) -> Expr:
    cond, value, rest = chain.args
    if rest.op == "when" and not rest.kw.get("closed"):
        return Expr("when", (cond, value, _replace_tail(rest, branch)), closed=False)
    return Expr("when", (cond, value, branch), closed=False)


def _close_chain(chain: Expr, otherwise: Expr) -> Expr:
    cond, value, rest = chain.args
    tail = _close_chain(rest, otherwise) if rest.op == "when" and not rest.kw.get("closed") else otherwise
    return Expr("when", (cond, value, tail), closed=True)


# ---------------------------------------------------------------------------------- constructors
def col(name: str) -> Expr:
    return Expr("col", name=name)


def lit(value: Scalar, dtype: Any = None) -> Expr:
    return Expr("lit", value=value, dtype=dtype)


_NULL = lit(None)


def when(condition: Any) -> _When:
    return _When(_expr(condition))


def max_horizontal(*exprs: Any) -> Expr:
    return Expr("max_horizontal", tuple(_expr(e) for e in exprs))


def null_column() -> Expr:
    """A column of nulls (a feature the bar interval cannot express)."""
    return Expr("null_column")


def ewm(x: Expr, *, alpha: float, window: int, min_count: int) -> Expr:
    """Exponentially weighted mean over the last ``window`` bars (kernels.windowed_ewm)."""
    return Expr("ewm", (x,), alpha=float(alpha), window=int(window), min_count=int(min_count))


def rolling_ols(x: Expr, y: Expr, *, window: int, min_count: int) -> Expr:
    """OLS slope of y on x over the last ``window`` bars (kernels.rolling_ols_slope)."""
    return Expr("rolling_ols", (x, y), window=int(window), min_count=int(min_count))


def ndtr(x: Expr) -> Expr:
    """Standard normal CDF, element-wise (scipy.special.ndtr); NaN where x is null."""
    return Expr("ndtr", (x,))


def marked_quantile(
    close: Expr, x: Expr, *, q: float, step_s: int, window: int, min_samples: int, hold: int
) -> Expr:
    """Rolling ``q`` quantile (linear) of ``x`` over the last ``window`` marks, a mark being a bar whose
    close (``close``, epoch seconds) is a multiple of ``step_s``; a mark's value is held ``hold`` bars."""
    return Expr(
        "marked_quantile",
        (close, x),
        q=float(q),
        step_s=int(step_s),
        window=int(window),
        min_samples=int(min_samples),
        hold=int(hold),
    )


def garch(ts: Expr, r: Expr, *, output: str, series: str, batch: Callable[[pl.Series], pl.Series]) -> Expr:
    """One output (``s2``, ``pers`` or ``var``) of the GARCH(1,1) filter of returns ``r`` on the grid
    ``ts`` (kimp.features.garch); ``batch`` computes it over whole columns."""
    return Expr("garch", (ts, r), output=output, series=series, batch=batch)


def _expr(v: Any) -> Expr:
    if isinstance(v, Expr):
        return v
    if isinstance(v, _When):
        raise TypeError("when(...) needs .then(...)")
    if isinstance(v, pl.Expr):
        raise TypeError(
            "mix of a polars expression and a feature Expr: write the feature with kimp.features.expr"
        )
    return lit(v)


def _hashable(v: Any) -> Any:
    try:
        hash(v)
        return v
    except TypeError:
        return id(v)


# ---------------------------------------------------------------------------------- polars lowering
def _operand(e: Expr, memo: dict[int, Any]) -> Any:
    """A literal stays a bare Python scalar in a binary operation (so polars infers the same dtypes as
    the family's original ``col(x) * 2``)."""
    if e.op == "lit" and e.kw["dtype"] is None and e.kw["value"] is not None:
        return e.kw["value"]
    return _lower(e, memo)


_BIN = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
}


def _lower(e: Expr, memo: dict[int, Any]) -> Any:
    hit = memo.get(id(e))
    if hit is not None:
        return hit
    out = _lower_node(e, memo)
    memo[id(e)] = out
    return out


def _lower_node(e: Expr, memo: dict[int, Any]) -> pl.Expr:
    op, kw = e.op, e.kw
    if op == "col":
        return pl.col(kw["name"])
    if op == "lit":
        return pl.lit(kw["value"], kw["dtype"]) if kw["dtype"] is not None else pl.lit(kw["value"])
    if op == "null_column":
        return pl.repeat(None, pl.len(), dtype=pl.Float64)
    if op in _BIN:
        a, b = e.args
        left = _operand(a, memo)
        right = _operand(b, memo)
        if not isinstance(left, pl.Expr):  # reflected: scalar on the left
            return _BIN[op](pl.lit(left), right) if op in ("and", "or") else _reflect(op, left, right)
        return _BIN[op](left, right)
    x = e.args[0]
    px = _lower(x, memo)
    if op == "neg":
        return -px
    if op == "not":
        return ~px
    if op in ("log", "sqrt", "abs", "sin", "cos", "is_null", "is_not_null"):
        return getattr(px, op)()
    if op == "shift":
        return px.shift(kw["n"])
    if op == "diff":
        return px.diff(kw["n"])
    if op == "clip":
        return px.clip(lower_bound=kw["lower"], upper_bound=kw["upper"])
    if op == "cast":
        return px.cast(kw["dtype"])
    if op == "fill_null":
        return px.fill_null(kw["value"])
    if op == "fill_nan":
        return px.fill_nan(kw["value"])
    if op.startswith("rolling_") and op != "rolling_ols":
        how = op.removeprefix("rolling_")
        extra = {"ddof": kw["ddof"]} if how == "std" else {}
        return getattr(px, op)(window_size=kw["window"], min_samples=kw["min_samples"], **extra)
    if op == "when":
        cond, value, other = e.args
        chain = pl.when(_lower(cond, memo)).then(_operand(value, memo))
        if other.op == "lit" and other.kw["value"] is None and not e.kw.get("closed"):
            return chain
        return chain.otherwise(_operand(other, memo))
    if op == "max_horizontal":
        return pl.max_horizontal(*[_lower(a, memo) for a in e.args])
    if op == "dt_field":
        return getattr(px.dt, kw["field"])()
    if op == "dt_tz":
        return px.dt.convert_time_zone(kw["tz"])
    if op == "dt_total_seconds":
        return px.dt.total_seconds()
    return _lower_kernel(e, px, memo)


def _reflect(op: str, left: Scalar, right: pl.Expr) -> pl.Expr:
    return {
        "add": lambda: left + right,
        "sub": lambda: left - right,
        "mul": lambda: left * right,
        "div": lambda: left / right,
        "pow": lambda: left**right,
        "gt": lambda: right < left,
        "ge": lambda: right <= left,
        "lt": lambda: right > left,
        "le": lambda: right >= left,
        "eq": lambda: right == left,
        "ne": lambda: right != left,
    }[op]()


def _lower_kernel(e: Expr, px: pl.Expr, memo: dict[int, Any]) -> pl.Expr:
    import numpy as np

    from kimp.features import kernels

    op, kw = e.op, e.kw
    if op == "ewm":
        alpha, window, count = kw["alpha"], kw["window"], kw["min_count"]
        return _numpy_map(px, lambda a: kernels.windowed_ewm(a, alpha, window, count))
    if op == "ndtr":
        from scipy.special import ndtr as _ndtr

        return px.map_batches(
            lambda x: pl.Series(_ndtr(x.fill_null(np.nan).to_numpy())), return_dtype=pl.Float64
        )
    if op == "rolling_ols":
        window, count = kw["window"], kw["min_count"]

        def ols(batch: pl.Series) -> pl.Series:
            xx = batch.struct.field("x").fill_null(np.nan).to_numpy().astype(np.float64)
            yy = batch.struct.field("y").fill_null(np.nan).to_numpy().astype(np.float64)
            return pl.Series(kernels.rolling_ols_slope(xx, yy, window, count))

        y = _lower(e.args[1], memo)
        return pl.struct(x=px, y=y).map_batches(ols, return_dtype=pl.Float64).fill_nan(None)
    if op == "marked_quantile":
        q, step, window, hold, least = kw["q"], kw["step_s"], kw["window"], kw["hold"], kw["min_samples"]

        def fn(batch: pl.Series) -> pl.Series:
            close_s = batch.struct.field("close").dt.epoch("s").to_numpy()
            values = batch.struct.field("x")
            marks = np.flatnonzero(close_s % step == 0)
            sampled = values.gather(marks).rolling_quantile(
                q, interpolation="linear", window_size=window, min_samples=least
            )
            out = np.full(values.len(), np.nan)
            out[marks] = sampled.fill_null(np.nan).to_numpy()
            filled = pl.Series(out).fill_nan(None)
            return filled.fill_null(strategy="forward", limit=hold) if hold else filled

        return pl.struct(close=px, x=_lower(e.args[1], memo)).map_batches(fn, return_dtype=pl.Float64)
    if op == "garch":
        return (
            pl.struct(ts=px, r=_lower(e.args[1], memo))
            .map_batches(kw["batch"], return_dtype=pl.Float64)
            .fill_nan(None)
        )
    raise ValueError(f"cannot lower feature op {op!r}")


def _numpy_map(expr: pl.Expr, fn: Callable[[Any], Any]) -> pl.Expr:
    """Apply a numpy/numba function to a whole column (per-coin frames, so no grouping is needed)."""
    import numpy as np

    return (
        expr.cast(pl.Float64)
        .map_batches(
            lambda s: pl.Series(s.name, fn(s.fill_null(np.nan).to_numpy().astype(np.float64, copy=False))),
            return_dtype=pl.Float64,
        )
        .fill_nan(None)
    )

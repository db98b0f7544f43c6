"""Compile the catalog's feature definitions (kimp.features.expr) into one incremental program per coin.

The registry that the batch build lowers to polars is asked for the same definitions (warm-up mask,
Float32 cast and all); helper columns are inlined and equal sub-expressions shared, so each distinct
intermediate is computed once per bar. A feature written as a plain polars expression cannot be compiled:
it is listed in ``Program.fallback`` and the engine evaluates it on a tail of the base frame instead
(kimp.streaming.evaluator), so every feature streams, the compiled ones fast.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from kimp.features.build import build_registry, feature_definition
from kimp.features.expr import Expr
from kimp.features.garch import GarchParams, fit_garch
from kimp.features.types import FeatureConfig
from kimp.streaming import vm

DAY_S = 86_400
NAN = float("nan")


class Unsupported(Exception):
    """A definition the streaming program cannot express (the feature falls back to tail evaluation)."""


@dataclass
class InputSlot:
    column: str
    field: str | None = None  # a calendar field of a datetime column (hour, minute, weekday)
    tz: str | None = None


@dataclass
class GarchGroup:
    series: str
    r_node: int
    ts_node: int
    state: int  # offset of [alpha, beta, variance, valid] in the state vector
    block: int | None = None  # refit block (epoch us) whose parameters are loaded


@dataclass
class Program:
    names: tuple[str, ...]
    outputs: np.ndarray  # node per feature (-1: not compiled)
    fallback: list[int]  # features evaluated on a tail instead
    inputs: list[InputSlot]
    arrays: dict[str, np.ndarray]
    n_state: int
    garch: list[GarchGroup]
    full: np.ndarray  # nodes computed at a bar close
    tick: np.ndarray  # nodes the tick-level features need
    garch_cache: dict[str, dict[int, GarchParams | None]] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.arrays["op"].shape[0])


class _Builder:
    def __init__(self, helpers: dict[str, object], interval_s: int, config: FeatureConfig) -> None:
        self.helpers = helpers
        self.interval_s = interval_s
        self.config = config
        self.nodes: list[dict] = []
        self.index: dict[tuple, int] = {}
        self.memo: dict[int, tuple[Expr, int]] = {}  # id -> (the node, kept alive so ids stay unique)
        self.inputs: list[InputSlot] = []
        self.input_index: dict[tuple, int] = {}
        self.ring_need: dict[int, int] = {}
        self.n_state = 0
        self.garch_groups: dict[str, GarchGroup] = {}
        fit_bars = (config.garch_fit_days + config.garch_refit_days) * DAY_S // interval_s + 2
        self.garch_ring = fit_bars

    # -------------------------------------------------------------- nodes
    def _node(self, op: int, args: tuple[int, ...] = (), state: int = 0, **params: float) -> int:
        """The node computing ``op`` of ``args`` (an equal one is shared); ``state`` floats of its own."""
        key = (op, args, tuple(sorted(params.items())))
        hit = self.index.get(key)
        if hit is not None:
            return hit
        if state:
            params["ip2"] = self._state(state)
            params["ns"] = state
        self.nodes.append({"op": op, "args": args, **params})
        i = len(self.nodes) - 1
        self.index[key] = i
        return i

    def _ring(self, node: int, length: int) -> None:
        self.ring_need[node] = max(self.ring_need.get(node, 0), length)

    def _state(self, size: int) -> int:
        off = self.n_state
        self.n_state += size
        return off

    def _input(self, slot: InputSlot) -> int:
        key = (slot.column, slot.field, slot.tz)
        if key not in self.input_index:
            self.input_index[key] = len(self.inputs)
            self.inputs.append(slot)
        return self._node(vm.INPUT, ip=self.input_index[key])

    def _const(self, value: object) -> int:
        if value is None:
            return self._node(vm.CONST, fp=float("nan"), fp2=1.0)
        return self._node(vm.CONST, fp=float(value), fp2=0.0)  # type: ignore[arg-type]

    # -------------------------------------------------------------- expressions
    def emit(self, e: Expr) -> int:
        hit = self.memo.get(id(e))
        if hit is not None:
            return hit[1]
        out = self._emit(e)
        self.memo[id(e)] = (e, out)
        return out

    def _emit(self, e: Expr) -> int:
        op, kw = e.op, e.kw
        if op == "col":
            name = kw["name"]
            if name in self.helpers:
                helper = self.helpers[name]
                if not isinstance(helper, Expr):
                    raise Unsupported(f"helper {name} is a polars expression")
                return self.emit(helper)
            return self._input(InputSlot(name))
        if op == "lit":
            return self._const(kw["value"])
        if op == "null_column":
            return self._const(None)
        if op in vm.BINARY:
            return self._node(vm.BINARY[op], (self.emit(e.args[0]), self.emit(e.args[1])))
        if op in vm.COMPARE:
            return self._node(vm.COMPARE[op], (self.emit(e.args[0]), self.emit(e.args[1])))
        if op in ("and", "or"):
            return self._node(vm.AND if op == "and" else vm.OR, (self.emit(e.args[0]), self.emit(e.args[1])))
        if op == "not":
            return self._node(vm.NOT, (self.emit(e.args[0]),))
        if op in vm.UNARY:
            return self._node(vm.UNARY[op], (self.emit(e.args[0]),))
        if op in ("is_null", "is_not_null"):
            return self._node(vm.IS_NULL if op == "is_null" else vm.IS_NOT_NULL, (self.emit(e.args[0]),))
        if op in ("fill_null", "fill_nan"):
            value = kw["value"]
            code = vm.FILL_NULL if op == "fill_null" else vm.FILL_NAN
            params = {"fp": float("nan"), "fp2": 1.0} if value is None else {"fp": float(value), "fp2": 0.0}
            return self._node(code, (self.emit(e.args[0]),), **params)
        if op == "clip":
            lo, hi = kw["lower"], kw["upper"]
            return self._node(
                vm.CLIP,
                (self.emit(e.args[0]),),
                ip=int(lo is not None),
                ip2=int(hi is not None),
                fp=float(lo or 0.0),
                fp2=float(hi or 0.0),
            )
        if op == "cast":
            x = self.emit(e.args[0])
            return self._node(vm.CAST_F32, (x,)) if kw["dtype"] == pl.Float32 else x
        if op == "when":
            cond, then, other = (self.emit(a) for a in e.args)
            return self._node(vm.WHEN, (cond, then, other))
        if op == "max_horizontal":
            nodes = [self.emit(a) for a in e.args]
            out = nodes[0]
            for other in nodes[1:]:
                out = self._node(vm.MAX2, (out, other))
            return out
        if op == "dt_total_seconds":
            return self._node(vm.TOTAL_SECONDS, (self.emit(e.args[0]),))
        if op == "dt_field":
            src = e.args[0]
            tz = None
            if src.op == "dt_tz":
                tz = src.kw["tz"]
                src = src.args[0]
            if src.op != "col":
                raise Unsupported("calendar fields of a computed datetime")
            return self._input(InputSlot(src.kw["name"], field=kw["field"], tz=tz))
        if op in ("shift", "diff"):
            n = kw["n"]
            if n < 0:
                raise Unsupported("a negative shift reads the future")
            x = self.emit(e.args[0])
            self._ring(x, n + 1)
            return self._node(vm.SHIFT if op == "shift" else vm.DIFF, (x,), ip=n)
        if op in vm.ROLLING:
            w = kw["window"]
            least = kw["min_samples"] if kw["min_samples"] is not None else w
            x = self.emit(e.args[0])
            self._ring(x, w + 1)
            code = vm.ROLLING[op]
            size = {vm.R_SUM: 3, vm.R_MEAN: 3, vm.R_STD: 12}.get(code, 5 + w)
            return self._node(code, (x,), state=size, ip=w, fp=float(kw.get("ddof", 0)), fp2=float(least))
        if op == "ewm":
            x = self.emit(e.args[0])
            w = kw["window"]
            self._ring(x, w + 1)
            return self._node(vm.EWM, (x,), state=3, ip=w, fp=kw["alpha"], fp2=float(kw["min_count"]))
        if op == "rolling_ols":
            x, y = self.emit(e.args[0]), self.emit(e.args[1])
            w = kw["window"]
            self._ring(x, w + 1)
            self._ring(y, w + 1)
            return self._node(vm.OLS, (x, y, kw["min_count"]), state=5, ip=w)
        if op == "ndtr":
            return self._node(vm.NDTR, (self.emit(e.args[0]),))
        if op == "marked_quantile":
            close, x = self.emit(e.args[0]), self.emit(e.args[1])
            w = kw["window"]
            args = (close, x, kw["min_samples"])
            node = self._node(
                vm.MQUANT, args, state=5 + w, ip=w, fp=kw["q"], fp2=float(kw["step_s"]), hold=kw["hold"]
            )
            return node
        if op == "garch":
            ts, r = self.emit(e.args[0]), self.emit(e.args[1])
            series = kw["series"]
            group = self.garch_groups.get(series)
            if group is None:
                group = GarchGroup(series=series, r_node=r, ts_node=ts, state=self._state(5))
                self.garch_groups[series] = group
            window = max(1, self.config.garch_window_days * DAY_S // self.interval_s)
            self._ring(r, max(window + 2, self.garch_ring))
            self._ring(ts, self.garch_ring)
            code = {"s2": 0, "pers": 1, "var": 2}[kw["output"]]
            return self._node(vm.GARCH, (ts, r, code), state=2, ip=window, fp2=float(group.state))
        raise Unsupported(f"operation {op!r}")


def compile_features(config: FeatureConfig, interval_s: int) -> Program:
    """The streaming program of every catalog feature of ``config`` at bars of ``interval_s``."""
    reg = build_registry(config, interval_s)
    specs = list(reg.specs)
    marks: dict[str, str] = {}
    builder = _Builder(reg.helpers, interval_s, config)
    outputs = np.full(len(specs), -1, dtype=np.int64)
    fallback: list[int] = []
    for i, (spec, make) in enumerate(zip(specs, reg.makers, strict=True)):
        definition = feature_definition(spec, make, marks, 0.0)
        if not isinstance(definition, Expr):
            fallback.append(i)
            continue
        try:
            outputs[i] = builder.emit(definition)
        except Unsupported:
            fallback.append(i)
    return _assemble(
        builder, tuple(s.name for s in specs), outputs, fallback, [s.refresh == "tick" for s in specs]
    )


def _assemble(
    b: _Builder, names: tuple[str, ...], outputs: np.ndarray, fallback: list[int], tick_features: list[bool]
) -> Program:
    n = len(b.nodes)
    arr = {
        "op": np.zeros(n, np.int64),
        "a": np.zeros(n, np.int64),
        "b": np.zeros(n, np.int64),
        "c": np.zeros(n, np.int64),
        "ip": np.zeros(n, np.int64),
        "ip2": np.zeros(n, np.int64),
        "fp": np.zeros(n, np.float64),
        "fp2": np.zeros(n, np.float64),
        "ring_of": np.full(n, -1, np.int64),
        "ns": np.zeros(n, np.int64),  # state floats of the node's own, at ip2 (saved around a tick)
    }
    holds: list[tuple[int, int]] = []
    for i, node in enumerate(b.nodes):
        arr["op"][i] = node["op"]
        args = node["args"]
        for k, name in enumerate(("a", "b", "c")):
            if k < len(args):
                arr[name][i] = args[k]
        for name in ("ip", "ip2", "fp", "fp2", "ns"):
            if name in node:
                arr[name][i] = node[name]
        if node["op"] == vm.MQUANT:
            holds.append((int(node["ip2"]), int(node["hold"])))
    # MQUANT and GARCH carry an integer (min samples, output code) in the "c" slot, not a node index
    rings = sorted(b.ring_need.items())
    ring_off = np.zeros(len(rings), np.int64)
    ring_len = np.zeros(len(rings), np.int64)
    total = 0
    for r, (node, length) in enumerate(rings):
        arr["ring_of"][node] = r
        ring_off[r] = total
        ring_len[r] = length
        total += length
    arr["ring_off"], arr["ring_len"] = ring_off, ring_len
    arr["rv"] = np.full(total, np.nan)
    arr["rn"] = np.ones(total, np.bool_)
    state = np.zeros(max(1, b.n_state))
    for off, hold in holds:
        state[off + 4] = hold
    arr["state"] = state
    full = np.ones(n, np.bool_)
    tick = _reachable(
        b.nodes, [int(outputs[i]) for i, t in enumerate(tick_features) if t and outputs[i] >= 0]
    )
    return Program(
        names=names,
        outputs=outputs,
        fallback=fallback,
        inputs=b.inputs,
        arrays=arr,
        n_state=b.n_state,
        garch=list(b.garch_groups.values()),
        full=full,
        tick=tick,
    )


# ops whose third argument slot holds an integer parameter, not a node
_INT_C = (vm.MQUANT, vm.GARCH, vm.OLS)


def _reachable(nodes: list[dict], roots: list[int]) -> np.ndarray:
    seen = np.zeros(len(nodes), np.bool_)
    todo = list(roots)
    while todo:
        i = todo.pop()
        if seen[i]:
            continue
        seen[i] = True
        op = nodes[i]["op"]
        args = nodes[i]["args"]
        if op in _INT_C:
            args = args[:2]
        todo.extend(args)
    return seen


# ------------------------------------------------------------------------------------------ running
class CompiledFeatures:
    """One coin's program and its state: ``step(row)`` gives the values of every compiled feature."""

    def __init__(self, program: Program, config: FeatureConfig, interval_s: int) -> None:
        # the program's structure is shared; rings, state and GARCH parameters are this coin's own
        arrays = dict(program.arrays)
        for name in ("rv", "rn", "state"):
            arrays[name] = program.arrays[name].copy()
        garch = [GarchGroup(g.series, g.r_node, g.ts_node, g.state) for g in program.garch]
        self.p = dataclasses.replace(program, arrays=arrays, garch=garch, garch_cache={})
        self.config = config
        self.interval_s = interval_s
        a = arrays
        self.val = np.full(program.n_nodes, np.nan)
        self.nul = np.ones(program.n_nodes, np.bool_)
        self.inputs = np.full(len(program.inputs), np.nan)
        self.input_null = np.ones(len(program.inputs), np.bool_)
        n_ring = int((a["ring_of"] >= 0).sum())
        self.saved_v = np.empty(max(1, n_ring))
        self.saved_n = np.empty(max(1, n_ring), np.bool_)
        self.saved_state = np.empty_like(a["state"])
        self.t = 0  # bars stepped (committed)
        self.history_start_us: int | None = None
        self._zones = {s.tz: ZoneInfo(s.tz) for s in program.inputs if s.tz}
        # set_row's plan: (column, calendar field, zone) per slot, filled into Python lists then copied once
        self._slots = [(s.column, s.field, self._zones[s.tz] if s.tz else None) for s in program.inputs]
        self._values: list[object] = [NAN] * len(program.inputs)
        self._nulls = [True] * len(program.inputs)
        ok = program.outputs >= 0
        self._out_ok, self._out_idx = ok, program.outputs[ok]

    def set_row(self, row: dict[str, object]) -> None:
        """Load the input slots from one base-frame row (column -> value; datetimes as datetime)."""
        values = self._values
        nulls = self._nulls
        for k, (column, fld, zone) in enumerate(self._slots):
            value = row.get(column)
            if value is None:
                values[k] = NAN
                nulls[k] = True
                continue
            nulls[k] = False
            if isinstance(value, datetime):
                if fld is not None:
                    local = value.astimezone(zone) if zone is not None else value
                    value = (
                        local.hour
                        if fld == "hour"
                        else local.minute
                        if fld == "minute"
                        else local.isoweekday()
                    )
                else:
                    value = _epoch_us(value)
            values[k] = value
        self.inputs[:] = values
        self.input_null[:] = nulls

    def input_matrix(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The input slots of every row of a base frame: (values, nulls), datetimes in epoch us."""
        values = np.full((frame.height, len(self.p.inputs)), np.nan)
        nulls = np.ones((frame.height, len(self.p.inputs)), np.bool_)
        for k, slot in enumerate(self.p.inputs):
            if slot.column not in frame.columns:
                continue
            series = frame[slot.column]
            if series.dtype == pl.Datetime:
                if slot.field is not None:
                    local = series.dt.convert_time_zone(slot.tz) if slot.tz else series
                    series = getattr(local.dt, slot.field)()
                else:
                    series = series.dt.epoch("us")
            nulls[:, k] = series.is_null().to_numpy()
            values[:, k] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        return values, nulls

    def warm(self, frame: pl.DataFrame) -> None:
        """Step through every row of ``frame`` (stored history) in one call per GARCH refit block."""
        if frame.height == 0:
            return
        values, nulls = self.input_matrix(frame)
        ts_us = frame["ts"].dt.epoch("us").to_numpy()
        if self.history_start_us is None:
            self.history_start_us = int(ts_us[0])
        block_us = self.config.garch_refit_days * DAY_S * 1_000_000
        blocks = ts_us // block_us
        cuts = [0, *np.flatnonzero(blocks[1:] != blocks[:-1]) + 1, frame.height]
        a = self.p.arrays
        for lo, hi in itertools.pairwise(cuts):
            self._load_garch(int(ts_us[lo]))
            vm.run(
                self.t,
                a["op"],
                a["a"],
                a["b"],
                a["c"],
                a["ip"],
                a["ip2"],
                a["fp"],
                a["fp2"],
                a["ns"],
                a["ring_of"],
                a["ring_off"],
                a["ring_len"],
                a["rv"],
                a["rn"],
                a["state"],
                np.ascontiguousarray(values[lo:hi]),
                np.ascontiguousarray(nulls[lo:hi]),
                self.val,
                self.nul,
                self.p.full,
            )
            self.t += hi - lo

    def step(self, row: dict[str, object], *, commit: bool = True, tick: bool = False) -> np.ndarray:
        """Values of the compiled features at this row (NaN = null; features not compiled stay NaN)."""
        self.set_row(row)
        ts = row.get("ts")
        if self.history_start_us is None and isinstance(ts, datetime):
            self.history_start_us = _epoch_us(ts)
        if isinstance(ts, datetime):
            self._load_garch(_epoch_us(ts))
        a = self.p.arrays
        vm.step(
            self.t,
            a["op"],
            a["a"],
            a["b"],
            a["c"],
            a["ip"],
            a["ip2"],
            a["fp"],
            a["fp2"],
            a["ns"],
            a["ring_of"],
            a["ring_off"],
            a["ring_len"],
            a["rv"],
            a["rn"],
            a["state"],
            self.inputs,
            self.input_null,
            self.val,
            self.nul,
            self.p.tick if tick else self.p.full,
            commit,
            self.saved_v,
            self.saved_n,
            self.saved_state,
        )
        if commit:
            self.t += 1
        idx = self._out_idx
        values = self.val[idx]
        values[self.nul[idx] | ~np.isfinite(values)] = np.nan
        if len(idx) == len(self.p.names):
            return values
        out = np.full(len(self.p.names), np.nan)
        out[self._out_ok] = values
        return out

    # -------------------------------------------------------------- GARCH parameters
    def _load_garch(self, ts_us: int) -> None:
        cfg = self.config
        block_us = cfg.garch_refit_days * DAY_S * 1_000_000
        fit_us = cfg.garch_fit_days * DAY_S * 1_000_000
        b0 = ts_us // block_us * block_us
        state = self.p.arrays["state"]
        for g in self.p.garch:
            if g.block == b0:
                continue
            cache = self.p.garch_cache.setdefault(g.series, {})
            if b0 not in cache:
                covered = self.history_start_us is not None and self.history_start_us <= b0 - fit_us
                cache[b0] = self._fit(g, b0 - fit_us, b0) if covered else None
            params = cache[b0]
            if params is None:
                state[g.state : g.state + 4] = (np.nan, np.nan, np.nan, 0.0)
            else:
                state[g.state : g.state + 4] = (params.alpha, params.beta, params.variance, 1.0)
            state[g.state + 4] += 1.0  # the filter sums are rebuilt with the new parameters
            g.block = b0

    def _fit(self, g: GarchGroup, lo_us: int, hi_us: int) -> GarchParams | None:
        """fit_garch on the returns of the bars that opened in [lo, hi): the fit window the batch build
        uses (kimp.features.garch), read from the rings (the new bar is not in them yet)."""
        a = self.p.arrays
        r_ring, ts_ring = int(a["ring_of"][g.r_node]), int(a["ring_of"][g.ts_node])
        n = min(self.t, int(a["ring_len"][r_ring]), int(a["ring_len"][ts_ring]))
        if n == 0:
            return None
        lags = np.arange(n, 0, -1)  # oldest first: positions t-n .. t-1
        pos_r = a["ring_off"][r_ring] + (self.t - lags) % a["ring_len"][r_ring]
        pos_ts = a["ring_off"][ts_ring] + (self.t - lags) % a["ring_len"][ts_ring]
        ts = a["rv"][pos_ts]
        r = np.where(a["rn"][pos_r], np.nan, a["rv"][pos_r])
        sel = (ts >= lo_us) & (ts < hi_us)
        if not sel.any():
            return None
        return fit_garch(r[sel], min_obs=self.config.garch_min_obs)


def _epoch_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=value.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

"""Backtest results do not depend on which compiled copy of a kernel runs (issue 11, item 1).

numba compiles a function once per argument types (a read-only array is another type than a writable
one) and inlines callees into each caller; which copy serves a call depends on what is already loaded,
which differs between a cold process and one reading numba's on-disk cache. A loop compiled with
``fastmath`` reassociation sums in an order the compiler picks per copy, so two copies may disagree in
the last bits, and the two engines, or a cold and a warm run, book different trades. Kernels therefore
never reassociate (explicit lanes instead), and every copy gives the same bits. CI also runs the
backtest tests a second time on the warm cache (.ci/run).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
from numba import njit

from kimp.backtest import kernel as K
from kimp.backtest.metrics import return_stats

KIMP = Path(__file__).resolve().parents[1] / "kimp"


def _jit_keywords(tree: ast.AST) -> list[tuple[str, int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "njit",
            "jit",
        ):
            out += [(kw.arg or "", node.lineno, ast.unparse(kw.value)) for kw in node.keywords]
    return out


def test_no_kernel_lets_the_compiler_reorder_floating_point_sums() -> None:
    offenders = [
        f"{path.relative_to(KIMP.parent)}:{line} fastmath={value}"
        for path in sorted(KIMP.rglob("*.py"))
        for name, line, value in _jit_keywords(ast.parse(path.read_text()))
        if name == "fastmath" and value not in ("False", "set()", "{}")
    ]
    assert not offenders, offenders


@njit
def _sigma_inside_another_function(close, i, window):
    return K.window_sigma(close, i, window) + 0.0


def test_every_compiled_copy_gives_the_same_bits() -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(2, 3000))
        curve = 1e8 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        frozen = curve.copy()
        frozen.flags.writeable = False  # polars hands out read-only arrays: another specialisation
        assert return_stats(curve, 1e8) == return_stats(frozen, 1e8)
        i, window = int(rng.integers(0, n)), int(rng.integers(2, 400))
        alone = K.window_sigma(curve, i, window)
        assert alone == K.window_sigma(frozen, i, window) == _sigma_inside_another_function(curve, i, window)
        returns = curve[max(i - window + 1, 1) : i + 1] / curve[max(i - window, 0) : i] - 1.0
        if returns.size >= 2:
            assert abs(alone - returns.std(ddof=1)) <= 1e-9 * returns.std(ddof=1) + 1e-15


def _run(code: str, path: Path) -> str:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(path)
    done = subprocess.run([sys.executable, "-c", code], cwd=path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_cached_kernel_follows_the_modules_it_inlines(tmp_path: Path) -> None:
    """numba checks a cached function against its own file only: after the module it inlines changes,
    the warm cache still runs the old code. kimp.numba_cache removes such stale files first."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    leaf = "from numba import njit\nSCALE = {}\n\n@njit(cache=True, inline='always')\ndef f(x):\n    return x * SCALE\n"
    (pkg / "leaf.py").write_text(leaf.format(1.0))
    (pkg / "caller.py").write_text(
        "from numba import njit\nfrom pkg.leaf import f\n\n@njit(cache=True)\ndef g(x):\n    return f(x) + 0.0\n"
    )
    plain = "import pkg.caller; print(pkg.caller.g(2.0))"
    guarded = "from pathlib import Path; from kimp.numba_cache import refresh_numba_cache; " + (
        f"refresh_numba_cache(Path({str(pkg)!r})); " + plain
    )
    assert _run(guarded, tmp_path) == "2.0"  # compiled and cached
    (pkg / "leaf.py").write_text(leaf.format(3.0))
    assert _run(plain, tmp_path) == "2.0"  # numba alone: the stale cache answers
    assert _run(guarded, tmp_path) == "6.0"  # the stale files removed, compiled again
    assert _run(guarded, tmp_path) == "6.0"  # and cached again under the new digest


def test_kimp_stamps_its_numba_caches() -> None:
    from kimp.numba_cache import STAMP, cache_dir, cached_sources, sources_digest

    sources = cached_sources()
    assert {p.name for p in sources} >= {"kernel.py", "vectorized.py", "event_driven.py", "kernels.py"}
    where = cache_dir(KIMP / "backtest" / "kernel.py")
    assert where is not None and (where / STAMP).read_text() == sources_digest(sources)

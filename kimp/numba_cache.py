"""numba's on-disk cache, kept fresh across modules.

numba checks a cached function against its own source file only (time stamp and size). A kernel that
inlines or calls functions from another module (both backtest engines inline ``kimp.backtest.kernel``;
the RL environment inlines it too) keeps running the old code of that module after it changes, and
constants it read from there stay frozen: after an upgrade or an edit, the warm cache mixes versions
and, e.g., the two engines book different trades (issue 11). numba documents this limitation.

:func:`refresh_numba_cache` closes it: a digest of every kimp source file that caches numba functions
is kept beside their cache files; when it differs (any such file changed), those cache files are
removed, so numba compiles again. It runs once per process, on ``import kimp``, before any kernel is
called; the cost is reading those files (a few milliseconds).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STAMP = "kimp-numba-sources.sha256"
_refreshed: set[Path] = set()


def cached_sources(root: Path = ROOT) -> list[Path]:
    """The source files under ``root`` with numba functions cached on disk."""
    return sorted(p for p in root.rglob("*.py") if b"cache=True" in p.read_bytes())


def sources_digest(sources: list[Path], root: Path = ROOT) -> str:
    import numba

    h = hashlib.sha256(numba.__version__.encode())
    for path in sources:
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def cache_dir(source: Path) -> Path | None:
    """Where numba keeps the cache of ``source``'s functions (its own choice of locator)."""
    from numba.core.caching import CacheImpl

    def probe() -> None:  # a locator only reads the function's first line number
        pass

    for cls in CacheImpl._locator_classes:
        locator = cls.from_function(probe, str(source))
        if locator is not None:
            return Path(locator.get_cache_path())
    return None


def refresh_numba_cache(root: Path = ROOT) -> list[Path]:
    """Remove the numba cache files of ``root``'s sources when any of those sources changed since the
    cache was written; returns the files removed. Safe with several processes at once: a removed file
    is only compiled again, and numba writes cache files atomically."""
    root = root.resolve()
    if root in _refreshed:
        return []
    _refreshed.add(root)
    sources = cached_sources(root)
    if not sources:
        return []
    digest = sources_digest(sources, root)
    by_dir: dict[Path, list[Path]] = defaultdict(list)
    for src in sources:
        where = cache_dir(src)
        if where is not None:
            by_dir[where].append(src)
    removed: list[Path] = []
    for where, files in by_dir.items():
        stamp = where / STAMP
        with contextlib.suppress(OSError):
            if stamp.read_text() == digest:
                continue
        for src in files:
            for f in [*where.glob(f"{src.stem}.*.nbi"), *where.glob(f"{src.stem}.*.nbc")]:
                with contextlib.suppress(OSError):
                    f.unlink()
                    removed.append(f)
        with contextlib.suppress(OSError):
            where.mkdir(parents=True, exist_ok=True)
            tmp = where / f"{STAMP}.{os.getpid()}"
            tmp.write_text(digest)
            tmp.replace(stamp)
    return removed

"""kimp domain code: plain Python (polars, numpy, numba), never imports Dagster.

The Dagster layer lives in ``kimp_pipelines``; it reads inputs, calls this package and attaches metadata.
"""

from kimp.numba_cache import refresh_numba_cache

# Before any kernel loads from numba's on-disk cache: drop cache files written for other versions of the
# modules they inline (numba checks only a function's own file; see kimp.numba_cache).
refresh_numba_cache()

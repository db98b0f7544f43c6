"""kimp domain code: plain Python (polars, numpy, numba), never imports Dagster.

The Dagster layer lives in ``kimp_pipelines``; it reads inputs, calls this package and attaches metadata.
"""

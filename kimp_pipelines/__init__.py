"""kimp's Dagster layer: assets, checks, jobs, schedules, sensors and resources.

Thin by design: assets read their inputs, call the plain-Python domain package ``kimp`` and attach
metadata. Everything is assembled once in :mod:`kimp_pipelines.definitions`.
"""

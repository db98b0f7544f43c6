"""kimp's Dagster layer: assets, checks, jobs, schedules, sensors and resources.

Thin by design: assets read their inputs, call the plain-Python domain package ``kimp`` and attach
metadata. Everything is assembled once in :mod:`kimp_pipelines.definitions`.
"""

import os

# OpenMP threads spin while they wait; with the other core busy (a second run, the daemon) that made
# LightGBM/XGBoost/torch steps 6-20x slower here. Passive waiting costs nothing when cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""kimp's Dagster layer: assets, checks, jobs, schedules, sensors and resources.

Thin by design: assets read their inputs, call the plain-Python domain package ``kimp`` and attach
metadata. Everything is assembled once in :mod:`kimp_pipelines.definitions`.
"""

import os
import warnings

from dagster import BetaWarning, PreviewWarning

# OpenMP threads spin while they wait; with the other core busy (a second run, the daemon) that made
# LightGBM/XGBoost/torch steps 6-20x slower here. Passive waiting costs nothing when cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# kimp uses a few Dagster features marked beta or preview on purpose (time-window mappings that tolerate
# missing upstream days, partitioned asset checks; docs/decisions.md): the warnings they
# raise where kimp's own modules call them say nothing to a user, so they are silenced for those call
# sites only. Dagster's warnings about anyone else's code still show.
for _category in (BetaWarning, PreviewWarning):
    warnings.filterwarnings("ignore", category=_category, module=r"kimp_pipelines(\.|$)")

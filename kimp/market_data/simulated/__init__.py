"""Deterministic simulated market for the kimchi premium (see docs/simulator.md).

A daily anchor path (00:00 UTC state of every day from ``SimParams.origin`` to ``horizon``) plus
intraday Gaussian bridges between consecutive anchors: any day can be generated alone and joins its
neighbours exactly.
"""

from kimp.market_data.simulated.params import REGIME_NAMES, MarketSpec, SimParams
from kimp.market_data.simulated.source import SimulatedSource

__all__ = ["REGIME_NAMES", "MarketSpec", "SimParams", "SimulatedSource"]

"""Real-time features: the streaming engine (bar-close and tick feature vectors equal to the batch
``features`` asset), the feeds it consumes, the online store it writes and the offline time-series store.

Entry points
- ``StreamingEngine(config, interval_s=, kr_venue=)``: ``warm_up(history, until=)`` then ``on_event(event)``
  for every ``Rows`` / ``BarClose`` a feed emits; returns ``FeatureVector``s.
- ``TailEvaluator``: the catalog's own expressions evaluated on the newest bars of a base frame.
"""

from kimp.streaming.engine import StreamingEngine
from kimp.streaming.evaluator import TailEvaluator
from kimp.streaming.events import BarClose, Event, FeatureVector, Rows

__all__ = ["BarClose", "Event", "FeatureVector", "Rows", "StreamingEngine", "TailEvaluator"]

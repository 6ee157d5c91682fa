"""Every statistic computed from results stores: collapse events, fits, verdicts, advisor, baselines.

``figures/`` draws what this package returns; ``repro analyze``, ``fit``, ``advise``
and ``figures`` call it. It reads stores (:mod:`results`) and :mod:`theory`, never the engines.
"""

from analysis.store import load_sweep, series
from analysis.sweep import SweepAnalysis, analyze

__all__ = ["SweepAnalysis", "analyze", "load_sweep", "series"]

"""Experiments at scale: sweep files (``spec``) run as Ray Tune trials (``runner``, ``trial``),
their rows (``results``) and the statistics across seeds (``report``)."""

from liquid_rl.agents.sweep.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "load_sweep"]

"""`phases`: when the run memorized, when it generalized, and Nanda et al.'s three phases.

A run-scope probe: it reads the run's metrics (and the `progress` table when there is one) and
calls `measures.transitions.locate_phases`, which holds the rules (docs/probes/phases.md).
"""

from __future__ import annotations

from grokscope.measures.transitions import locate_phases
from grokscope.probes.base import Probe, register_probe


@register_probe
class PhasesProbe(Probe):
    name = "phases"
    version = "2"
    scope = "run"
    description = "memorization/generalization steps, delay, and the three phases of Nanda et al."

    def measure_run(self, run, tables):
        metrics = run.metrics
        if not len(metrics["step"]) and "metrics" in tables:
            metrics = tables["metrics"]
        return locate_phases(metrics, cross_entropy=run.config.train.loss == "cross_entropy",
                             restricted=tables.get("progress"))

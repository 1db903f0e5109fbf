"""grokscope: train grokking runs, probe their checkpoints, report when and why they generalized.

Every name below is imported on first use, so `import grokscope` is light and importing one part
(a report, a measure) never loads the others: torch comes with the first training, model, probe
or measure, matplotlib and TransformerLens only where figures or models are built.
"""

from __future__ import annotations

import importlib
from typing import Any

from grokscope.version import __version__

_LAZY = {
    # the API in the README
    "RunConfig": "grokscope.config",
    "load_preset": "grokscope.config",
    "with_overrides": "grokscope.config",
    "Run": "grokscope.store",
    "load_run": "grokscope.store",
    "train": "grokscope.training",
    "ensure_trained": "grokscope.training",
    "branch": "grokscope.training",
    "train_many": "grokscope.training.stacked",
    "analyze": "grokscope.analysis",
    "build_report": "grokscope.report.document",
    "import_run": "grokscope.external.importers",
    "import_checkpoints": "grokscope.external.importers",
    "Recorder": "grokscope.external.recorder",
    "sweep": "grokscope.experiments.sweep",
    "landscape": "grokscope.experiments.landscape",
    # writing a probe
    "Probe": "grokscope.probes.base",
    "ProbeContext": "grokscope.probes.base",
    "ProbeResult": "grokscope.probes.base",
    "register_probe": "grokscope.probes.base",
    "FigureSpec": "grokscope.specs",
    "Panel": "grokscope.specs",
    "Mark": "grokscope.specs",
    "Series": "grokscope.specs",
    "Headline": "grokscope.specs",
    # measures
    "fourier_basis": "grokscope.measures.fourier",
    "gini": "grokscope.measures.fourier",
    "frequency_norms": "grokscope.measures.fourier",
    "key_frequencies_from_norms": "grokscope.measures.fourier",
    "empirical_ntk": "grokscope.measures.ntk",
    "ntk_top_eigenvalues": "grokscope.measures.ntk",
    "kernel_alignment": "grokscope.measures.similarity",
    "linear_cka": "grokscope.measures.similarity",
    "rbf_cka": "grokscope.measures.similarity",
    "critical_fraction": "grokscope.measures.parallelogram",
    "rqi": "grokscope.measures.parallelogram",
    "classify_phase": "grokscope.measures.transitions",
    "locate_phases": "grokscope.measures.transitions",
    "transition_steps": "grokscope.measures.transitions",
    # building blocks
    "build_task": "grokscope.tasks",
    "build_model": "grokscope.models",
    "checkpoint_schedule": "grokscope.training.schedule",
}

__all__ = ["__version__", *_LAZY]


# the modules whose functions hand a user a Run
_MAKE_RUNS = {"grokscope.store", "grokscope.training", "grokscope.training.stacked", "grokscope.external.importers",
              "grokscope.external.recorder", "grokscope.experiments.sweep"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        if _LAZY[name] in _MAKE_RUNS:   # a run shows itself as HTML in a notebook: the report registers
            importlib.import_module("grokscope.report.notebook")   # that view (the store never imports it)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'grokscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


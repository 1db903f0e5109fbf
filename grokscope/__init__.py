"""grokscope: train grokking runs, probe their checkpoints, report when and why they generalized.

`import grokscope` loads torch (the training API needs it); matplotlib and
TransformerLens only where models or figures are built.
"""

from __future__ import annotations

from typing import Any

from grokscope.version import __version__

# `grokscope.train` and `grokscope.analyze` name functions, not their modules: import them
# eagerly so the submodules never shadow them. This costs the torch import; TransformerLens and
# matplotlib stay lazy.
from grokscope.config import RunConfig, load_preset, with_overrides  # noqa: E402
from grokscope.store import Run, load_run  # noqa: E402
from grokscope.training import train  # noqa: E402
from grokscope.analysis import analyze  # noqa: E402
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, register_probe  # noqa: E402
from grokscope.specs import FigureSpec, Headline, Mark, Panel  # noqa: E402

_LAZY = {
    "fourier_basis": "grokscope.measures.fourier",
    "gini": "grokscope.measures.fourier",
    "frequency_norms": "grokscope.measures.fourier",
    "key_frequencies_from_norms": "grokscope.measures.fourier",
    "import_run": "grokscope.importers",
    "empirical_ntk": "grokscope.measures.ntk",
    "ntk_top_eigenvalues": "grokscope.measures.ntk",
    "kernel_alignment": "grokscope.measures.similarity",
    "linear_cka": "grokscope.measures.similarity",
    "rbf_cka": "grokscope.measures.similarity",
    "build_task": "grokscope.tasks",
    "build_model": "grokscope.models",
    "checkpoint_schedule": "grokscope.training.schedule",
    "critical_fraction": "grokscope.measures.parallelogram",
    "rqi": "grokscope.measures.parallelogram",
    "sweep": "grokscope.experiments.sweep",
    "landscape": "grokscope.experiments.landscape",
    "train_many": "grokscope.training.stacked",
    "ensure_trained": "grokscope.training",
    "build_report": "grokscope.report.document",
    "classify_phase": "grokscope.measures.transitions",
    "locate_phases": "grokscope.measures.transitions",
    "transition_steps": "grokscope.measures.transitions",
}

__all__ = ["__version__", "FigureSpec", "Headline", "Mark", "Panel", "Probe", "ProbeContext",
           "ProbeResult", "Run", "RunConfig", "analyze", "load_preset", "load_run", "register_probe",
           "train", "with_overrides", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokscope' has no attribute {name!r}")

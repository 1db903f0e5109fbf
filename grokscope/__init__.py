"""grokscope: train grokking runs, probe their checkpoints, report when and why they generalized.

`import grokscope` loads torch (the training API needs it); matplotlib and
TransformerLens only where models or figures are built.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# `grokscope.train` and `grokscope.analyze` name functions, not their modules: import them
# eagerly so the submodules never shadow them. This costs the torch import; TransformerLens and
# matplotlib stay lazy.
from grokscope.config import RunConfig, load_preset, with_overrides  # noqa: E402
from grokscope.store import Run, load_run  # noqa: E402
from grokscope.train import train  # noqa: E402
from grokscope.analyze import analyze  # noqa: E402
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, register_probe  # noqa: E402

_LAZY = {
    "fourier_basis": "grokscope.fourier",
    "gini": "grokscope.fourier",
    "frequency_norms": "grokscope.fourier",
    "key_frequencies_from_norms": "grokscope.fourier",
    "import_run": "grokscope.importers",
    "empirical_ntk": "grokscope.ntk",
    "ntk_top_eigenvalues": "grokscope.ntk",
    "kernel_alignment": "grokscope.similarity",
    "linear_cka": "grokscope.similarity",
    "rbf_cka": "grokscope.similarity",
    "build_task": "grokscope.tasks",
    "build_model": "grokscope.models",
    "checkpoint_schedule": "grokscope.schedule",
    "critical_fraction": "grokscope.parallelogram",
    "rqi": "grokscope.parallelogram",
    "sweep": "grokscope.sweep",
    "classify_phase": "grokscope.phase_diagram",
}

__all__ = ["__version__", "Probe", "ProbeContext", "ProbeResult", "Run", "RunConfig", "analyze",
           "load_preset", "load_run", "register_probe", "train", "with_overrides", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'grokscope' has no attribute {name!r}")

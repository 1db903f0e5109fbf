"""Analysis: run probes over a run's checkpoints and write tables (`engine`), choosing the probes
and checkpoints (`selection`) and caching results by checkpoint content (`cache`)."""

from grokscope.analysis.engine import analyze, default_out
from grokscope.analysis.selection import DEFAULT_PROBES, select_steps

__all__ = ["DEFAULT_PROBES", "analyze", "default_out", "select_steps"]

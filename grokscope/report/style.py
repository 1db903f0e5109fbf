"""A matplotlib style for papers: TrueType fonts in PDF, editable text in SVG, a colour-blind-safe
cycle (Okabe & Ito 2008), and figure widths for one and two columns.

Figures are `matplotlib.figure.Figure` objects made without pyplot: no backend is chosen or
changed, so importing grokscope in a notebook leaves its inline figures alone, and the figures
we save are never shown or kept in pyplot's list of open figures.
"""

from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

ONE_COLUMN = 3.3   # inches: one column of a two-column paper (NeurIPS, ICML: 3.25-3.3)
TWO_COLUMN = 6.8   # inches: the full text width
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
# Train is always blue and test always orange, in every figure; other series take the rest.
SPLIT_COLOURS = {"train": "#0072B2", "test": "#E69F00"}
OTHER_COLOURS = ["#009E73", "#CC79A7", "#000000", "#56B4E9", "#D55E00", "#999999", "#882255"]
LINESTYLES = ["-", "--", "-.", ":"]
PHASE_COLOURS = {"memorization": "#E69F00", "circuit formation": "#56B4E9", "cleanup": "#009E73"}
# Liu et al.'s four phases of a phase diagram's cells (sweep reports, reproductions); "" an empty cell
PHASE_CELL_COLOURS = {"comprehension": "#1b9e77", "grokking": "#d95f02", "memorization": "#7570b3",
                      "confusion": "#9e9e9e", "diverged": "#000000", "": "#ffffff"}

RC = {
    "pdf.fonttype": 42,            # TrueType, not Type 3: journals ask for it
    "ps.fonttype": 42,
    "svg.fonttype": "none",        # text stays text in SVG
    "svg.hashsalt": "grokscope",   # stable ids: identical SVG bytes on re-runs
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "figure.dpi": 150, "savefig.dpi": 200,
    # No "savefig.bbox": "tight": a saved figure keeps the width it was drawn at (one or two
    # columns); constrained layout keeps every label inside it.
}

# Fixed metadata so that a re-run writes identical files.
SAVE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None,
                                                     "Creator": None},
                 "svg": {"Date": None, "Creator": None}}


def new_figure(width: float = TWO_COLUMN, height: float = 2.4) -> Figure:
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")

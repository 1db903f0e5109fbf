"""A mechanism's figure for `grokscope explain`: the intervention branch's train and test accuracy
drawn over the control's, from the two runs' metric tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from grokscope.report.figures import figure, figure_legend, save_figure
from grokscope.report.style import ONE_COLUMN, RC, SPLIT_COLOURS
from grokscope.tables import Table


def draw_branch_figure(stem: Path, name: str, control: Table, branch: Table) -> str:
    """stem.{png,pdf,svg,csv}; returns the PNG's file name (relative to the explain directory)."""
    fig = figure(ONE_COLUMN, 2.4)
    data = {"run": [], "step": [], "train_acc": [], "test_acc": []}
    with matplotlib.rc_context(RC):
        ax = fig.subplots()
        for label, metrics, style in (("control", control, "--"), (name.replace("_", " "), branch, "-")):
            for split in ("train", "test"):
                ax.plot(metrics["step"], metrics[f"{split}_acc"], style, color=SPLIT_COLOURS[split],
                        label=f"{label}: {split}")
            n = len(metrics["step"])
            data["run"] += [label] * n
            data["step"] += list(np.asarray(metrics["step"]))
            data["train_acc"] += list(np.asarray(metrics["train_acc"], dtype=float))
            data["test_acc"] += list(np.asarray(metrics["test_acc"], dtype=float))
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name.replace('_', ' ')}: branch against control", loc="left")
        figure_legend(fig, [ax])
    table = {k: np.array(v, dtype=object if k == "run" else float) for k, v in data.items()}
    save_figure(fig, stem, table)
    return f"{stem.name}.png"

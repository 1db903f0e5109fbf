"""Compare runs: overlaid training curves and a table of phase steps."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib
import numpy as np

from grokscope.files import atomic_write_text
from grokscope.measures.transitions import locate_phases
from grokscope.report.figures import figure, save_figure
from grokscope.report.html import page
from grokscope.report.style import RC
from grokscope.store import Run
from grokscope.tables import write_table

COLUMNS = ("memorization_step", "generalization_step", "delay", "test_loss_peak_step", "test_loss_below_1_step")


class Comparison(type(Path())):
    """The comparison's compare.html (a Path); in a notebook it shows the figure and the table."""

    def _repr_html_(self) -> str:
        from grokscope.report.notebook import comparison_html

        return comparison_html(self.parent)


def compare(runs: list[Run], out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = figure(height=2.6)
    with matplotlib.rc_context(RC):
        ax_loss, ax_acc = fig.subplots(1, 2)
        rows = _draw(runs, ax_loss, ax_acc)
        handles, labels = ax_acc.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
    files = save_figure(fig, out / "compare")
    return _write(runs, rows, files, out)


def _draw(runs: list[Run], ax_loss, ax_acc) -> dict[str, list]:
    """Each run's test (solid) and train (dotted) loss and accuracy; returns the table's rows."""
    rows = {"run": [], **{c: [] for c in COLUMNS}, "final_test_acc": [], "weight_decay": [], "frac_train": [], "seed": []}
    for run in runs:
        m = run.metrics
        ph = locate_phases(m, cross_entropy=run.config.train.loss == "cross_entropy")
        for ax, col in ((ax_loss, "test_loss"), (ax_acc, "test_acc")):
            ok = np.isfinite(m[col])
            line, = ax.plot(m["step"][ok], m[col][ok], label=f"{run.name} test")
            train_col = col.replace("test", "train")
            ok = np.isfinite(m[train_col])
            ax.plot(m["step"][ok], m[train_col][ok], color=line.get_color(), ls=":", lw=0.8)
        rows["run"].append(run.name)
        for c in COLUMNS:
            rows[c].append(np.nan if ph.get(c) is None else float(ph[c]))
        rows["final_test_acc"].append(float(m["test_acc"][-1]) if len(m["test_acc"]) else np.nan)
        rows["weight_decay"].append(run.config.optim.weight_decay)
        rows["frac_train"].append(run.config.task.frac_train)
        rows["seed"].append(float(run.config.train.seed))
    ax_loss.set_yscale("log")
    for ax, title in ((ax_loss, "loss (solid test, dotted train)"), (ax_acc, "accuracy")):
        ax.set_xlabel("step")
        ax.set_title(title)
    return rows


def _write(runs: list[Run], rows: dict[str, list], files: list[str], out: Path) -> Path:
    table = {"step": np.arange(len(runs))}  # row index; tables keep `step` first
    table.update({k: np.array(v, dtype=object if k == "run" else np.float64) for k, v in rows.items()})
    del table["step"]
    write_table(out / "compare.csv", table)

    header = ["run", *COLUMNS, "final_test_acc", "weight_decay", "frac_train", "seed"]
    fmt = lambda v: v if isinstance(v, str) else ("–" if not np.isfinite(v) else f"{v:,.4g}")
    md = ["# grokscope comparison", "", "![compare](compare.png)", "",
          f"Figure files: {', '.join(files)}; data: compare.csv.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(table[h][i]) for h in header) + " |" for i in range(len(runs))]
    atomic_write_text(out / "compare.md", "\n".join(md) + "\n")
    png = base64.b64encode((out / "compare.png").read_bytes()).decode()
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(table[h][i]))}</td>" for h in header) + "</tr>"
                    for i in range(len(runs)))
    atomic_write_text(out / "compare.html", page(
        "grokscope comparison", f"<h1>grokscope comparison</h1><img src='data:image/png;base64,{png}'>"
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + f"</tr>{cells}</table>"))
    return Comparison(out / "compare.html")

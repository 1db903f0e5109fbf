"""A sweep's figures and report: the phase diagram, steps to generalize, test-accuracy curves,
report.md/html. Drawn from the tables `experiments.phase_table` computes (phases.csv,
phase_diagram.csv) and the runs' metrics.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from grokscope.files import atomic_write_text
from grokscope.measures.transitions import SWEEP_PHASES as PHASES
from grokscope.report.html import from_markdown
from grokscope.report.style import PHASE_CELL_COLOURS as COLORS
from grokscope.store import Run


def _grid(cell_rows, keys, x_key, y_key):
    xs = sorted({c[x_key] for c in cell_rows}) if x_key else [None]
    ys = sorted({c[y_key] for c in cell_rows}) if y_key else [None]
    return xs, ys


def plot_phase_diagram(cell_rows: list[dict], keys: list[str], axes_scale: dict[str, str], fig,
                       value: str = "phase") -> None:
    """One panel per preset; x the first grid key, y the second (a strip for one key). `value`
    "phase" colours cells by phase; "mean_test_step" draws the steps-to-generalize heat map.
    Drawn in the paper style (`report.style.RC`)."""
    import matplotlib

    from grokscope.report.style import RC

    with matplotlib.rc_context(RC):
        _plot_phase_diagram(cell_rows, keys, axes_scale, fig, value)


def _plot_phase_diagram(cell_rows, keys, axes_scale, fig, value) -> None:
    import matplotlib.colors as mcolors

    presets = list(dict.fromkeys(c["preset"] for c in cell_rows))
    x_key = keys[0] if keys else None
    y_key = keys[1] if len(keys) > 1 else None
    axs = fig.subplots(1, len(presets), squeeze=False)[0]
    for ax, preset in zip(axs, presets):
        rows = [c for c in cell_rows if c["preset"] == preset]
        xs, ys = _grid(rows, keys, x_key, y_key)
        grid = np.full((len(ys), len(xs)), np.nan)
        for c in rows:
            i = ys.index(c[y_key]) if y_key else 0
            j = xs.index(c[x_key]) if x_key else 0
            grid[i, j] = (PHASES.index(c["phase"]) if c["phase"] else np.nan) if value == "phase" else c[value]
        if value == "phase":
            cmap = mcolors.ListedColormap([COLORS[p] for p in PHASES])
            ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(PHASES) - 0.5,
                      interpolation="nearest")
        else:
            finite = grid[np.isfinite(grid)]
            norm = mcolors.LogNorm(max(finite.min(), 1), max(finite.max(), 2)) if len(finite) else None
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", norm=norm,
                           interpolation="nearest")
            fig.colorbar(im, ax=ax, label="steps to test acc. >= threshold")
        _ticks(ax.set_xticks, ax.set_xticklabels, xs, max_ticks=4)
        _ticks(ax.set_yticks, ax.set_yticklabels, ys, max_ticks=6)
        ax.set_xlabel(_axis_label(x_key, axes_scale))
        ax.set_ylabel(_axis_label(y_key, axes_scale))
        if len(presets) > 1:
            ax.set_title(preset)
    if value == "phase":
        from matplotlib.patches import Patch

        ncol = len(PHASES) if fig.get_figwidth() > 5 else 3   # one paper column: two rows
        fig.legend(handles=[Patch(color=COLORS[p], label=p) for p in PHASES], loc="outside lower center",
                   ncol=ncol, frameon=False)


def _ticks(set_ticks, set_labels, values, max_ticks: int = 6) -> None:
    step = -(-len(values) // max_ticks)
    idx = list(range(0, len(values), step))
    set_ticks(idx)
    set_labels(["" if values[i] is None else _tick(values[i]) if isinstance(values[i], float)
                else str(values[i]) for i in idx])


def _tick(v: float) -> str:
    """Short tick labels: 1e-04 rather than 0.0001, so neighbours never run into each other."""
    return f"{v:.0e}" if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4) else f"{v:.2g}"


def _axis_label(key: str | None, scale: dict[str, str]) -> str:
    if key is None:
        return ""
    return key + (" (log grid)" if scale.get(key) == "log" else "")


def plot_curves(run_dir: Path, points, keys: list[str], fig) -> dict[str, list]:
    """Test accuracy against step for every run, one panel per preset, one colour per grid cell;
    returns the numbers drawn (run, step, test_acc) as columns. Drawn in the paper style."""
    import matplotlib

    from grokscope.report.style import RC

    with matplotlib.rc_context(RC):
        return _plot_curves(run_dir, points, keys, fig)


def _plot_curves(run_dir: Path, points, keys: list[str], fig) -> dict[str, list]:
    import matplotlib

    presets = list(dict.fromkeys(p.preset for p in points))
    axs = fig.subplots(1, len(presets), squeeze=False, sharey=True)[0]
    drawn: dict[str, list] = {"run": [], "step": [], "test_acc": []}
    for ax, preset in zip(axs, presets):
        mine = [p for p in points if p.preset == preset]
        labels = list(dict.fromkeys(", ".join(f"{k.split('.')[-1]}={p.coords[k]:.3g}" if isinstance(p.coords[k], float)
                                              else f"{k.split('.')[-1]}={p.coords[k]}" for k in keys) or preset
                                    for p in mine))
        colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(labels), 1)))
        seen = set()
        for p in mine:
            try:
                m = Run(run_dir / p.name).metrics
            except (FileNotFoundError, ValueError, OSError):
                continue
            label = ", ".join(f"{k.split('.')[-1]}={p.coords[k]:.3g}" if isinstance(p.coords[k], float)
                              else f"{k.split('.')[-1]}={p.coords[k]}" for k in keys) or preset
            color = colors[labels.index(label)]
            ax.plot(np.maximum(m["step"], 1), m["test_acc"], color=color, lw=0.8,
                    label=None if label in seen else label)
            drawn["run"] += [p.name] * len(m["step"])
            drawn["step"] += list(m["step"])
            drawn["test_acc"] += list(m["test_acc"])
            seen.add(label)
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(preset)
    axs[0].set_ylabel("test accuracy")
    handles, labels = axs[-1].get_legend_handles_labels()
    if 0 < len(labels) <= 16:  # one legend beside the panels (the grid cells repeat across presets)
        axs[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                       fontsize=6)
    return drawn


def write_sweep_report(out: Path, spec: dict, points, axes, table, cell_rows, *, lag: int,
                       threshold: float) -> None:
    """The sweep's figures and report.md/html from its phase table and cells."""
    from grokscope.report.figures import figure, save_figure
    from grokscope.report.style import ONE_COLUMN, TWO_COLUMN
    from grokscope.tables import read_table

    keys = [a.key for a in axes]
    scale = {a.key: a.scale for a in axes}
    n_presets = len({p.preset for p in points})
    width = ONE_COLUMN if n_presets == 1 else TWO_COLUMN
    fig = figure(width=width, height=2.8)
    plot_phase_diagram(cell_rows, keys, scale, fig)
    save_figure(fig, out / "phase_diagram")   # its data: phase_diagram.csv, beside it
    fig = figure(width=width, height=2.8)
    plot_phase_diagram(cell_rows, keys, scale, fig, value="mean_test_step")
    save_figure(fig, out / "steps_to_generalize", read_table(out / "phase_diagram.csv"))
    fig = figure(width=TWO_COLUMN, height=2.6)
    drawn = plot_curves(out / "runs", points, keys, fig)
    save_figure(fig, out / "curves", {"run": np.array(drawn["run"], dtype=object),
                                      "step": np.array(drawn["step"], dtype=np.int64),
                                      "test_acc": np.array(drawn["test_acc"], dtype=np.float64)})
    _write_report(out, spec, table, cell_rows, keys, lag, threshold)


def _write_report(out: Path, spec: dict, table, cell_rows, keys, lag, threshold) -> None:
    counts = Counter(table["phase"])
    lines = [f"# Sweep: {', '.join(spec['presets'])}", "",
             f"{len(table['name'])} runs; grid: " +
             (", ".join(f"`{g['key']}` ({len(g['values'])} values, {g['scale']})" for g in spec["grid"]) or "none") +
             f"; seeds: {spec['seeds'] or 'the preset seed'}.", "",
             f"Phases (Liu et al. 2022): train/test accuracy threshold {threshold:g}; grokking when the "
             f"test step lags the train step by more than {lag:,} steps.", "",
             "| phase | runs |", "|---|---|"]
    lines += [f"| {ph} | {counts.get(ph, 0)} |" for ph in PHASES]
    if counts.get(""):
        lines.append(f"| not decided (unfinished or regression) | {counts['']} |")
    lines += ["", "![phase diagram](phase_diagram.png)", "",
              "![steps to generalize](steps_to_generalize.png)", "", "![test accuracy](curves.png)", "",
              "## Cells (majority over seeds)", "",
              "| preset | " + " | ".join(keys) + " | phase | " + " | ".join(PHASES) + " | mean test step |",
              "|---|" + "---|" * (len(keys) + 2 + len(PHASES))]
    for c in cell_rows:
        vals = [f"{c[k]:.3g}" if isinstance(c[k], float) else str(c[k]) for k in keys]
        step = "" if not np.isfinite(c["mean_test_step"]) else f"{c['mean_test_step']:,.0f}"
        lines.append(f"| {c['preset']} | " + " | ".join(vals) + f" | {c['phase'] or '-'} | " +
                     " | ".join(str(c[f'n_{ph}']) for ph in PHASES) + f" | {step} |")
    lines += ["", "Per-run rows: `phases.csv`; cells: `phase_diagram.csv`; runs: `runs/<name>/`."]
    md = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", from_markdown(md, "grokscope sweep"))

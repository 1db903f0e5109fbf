"""Drawing: figure specs (`grokscope.specs`) over tables, training curves, phase shading, and
saving as PNG/PDF/SVG. Everything here reads tables and specs; nothing knows a probe."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from grokscope.report.style import PHASE_COLOURS, RC, SAVE_METADATA, TWO_COLUMN, new_figure
from grokscope.specs import FigureSpec, Panel
from grokscope.store import atomic_write_bytes

FORMATS = ("png", "pdf", "svg")
Table = dict[str, np.ndarray]


def numeric_columns(table: Table) -> list[str]:
    return [k for k, v in table.items() if k != "step" and np.asarray(v).dtype.kind in "fiu"]


def panel_columns(panel: Panel, table: Table) -> list[str]:
    """The columns a panel draws, in order (see `Panel`)."""
    numeric = lambda c: c in table and c not in panel.exclude and np.asarray(table[c]).dtype.kind in "fiu"
    if not panel.columns and not panel.prefix:
        return [c for c in numeric_columns(table) if c != panel.x and numeric(c)][: panel.max_lines]
    matched = [c for c in table if panel.prefix and c.startswith(panel.prefix) and numeric(c)]
    if panel.kind == "heatmap":
        return sorted(matched, key=_suffix_number)
    explicit = [c for c in panel.columns if numeric(c) and c not in matched]
    if not panel.prefix:
        return explicit[: panel.max_lines]
    return matched[: panel.max_lines] + explicit  # e.g. the top eigenvalues, then the trace


def _suffix_number(column: str) -> int:
    digits = "".join(ch for ch in column[::-1] if ch.isdigit())[::-1]
    return int(digits) if digits else 0


def _auto_log(table: Table, cols: list[str]) -> bool:
    values = np.concatenate([np.asarray(table[c], dtype=float) for c in cols]) if cols else np.array([1.0])
    values = values[np.isfinite(values)]
    return bool(values.size > 0 and values.min() > 0 and values.max() / values.min() > 1e3)


def draw_panel(ax, panel: Panel, table: Table) -> None:
    """One panel of a figure spec into a matplotlib Axes."""
    if panel.kind == "heatmap":
        _heatmap(ax, panel, table)
        return
    cols = panel_columns(panel, table)
    for ref in panel.references:
        ax.plot(ref.x, ref.y, marker=ref.marker, ms=3, lw=1.0, label=ref.label)
    x = np.asarray(table[panel.x], dtype=float) if panel.x in table else np.asarray(table["step"], dtype=float)
    for c in cols:
        style = dict(marker=".", alpha=0.7, lw=0.8) if panel.references else {}
        ax.plot(x, np.asarray(table[c], dtype=float), label=c if not panel.references else f"run: {c}", **style)
    if panel.annotate_ends and cols and len(x):
        y = np.asarray(table[cols[-1]], dtype=float)
        ax.annotate("start", (x[0], y[0]), fontsize=6)
        ax.annotate("end", (x[-1], y[-1]), fontsize=6)
    for mark in panel.marks:
        line = ax.axvline if mark.axis == "x" else ax.axhline
        line(mark.value, color="#555555", ls=mark.style, lw=0.8, label=mark.label or None)
    logy = _auto_log(table, cols) if panel.logy is None else panel.logy
    if logy:
        ax.set_yscale("log")
    if panel.logx:
        ax.set_xscale("log")
    ax.set_xlabel(panel.xlabel or panel.x)
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel)
    if panel.title:
        ax.set_title(panel.title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)


def _heatmap(ax, panel: Panel, table: Table) -> None:
    """Columns `prefix<k>` as rows of an image, one column per checkpoint."""
    cols = panel_columns(panel, table)
    if not cols:
        return
    data = np.stack([np.asarray(table[c], dtype=float) for c in cols])
    steps = np.asarray(table["step"])
    first, last = _suffix_number(cols[0]), _suffix_number(cols[-1])
    extent = (0, len(steps), first - 0.5, last + 0.5)
    ax.imshow(data, aspect="auto", origin="lower", extent=extent, cmap="viridis", interpolation="nearest")
    ticks = np.linspace(0, len(steps) - 1, min(5, len(steps))).astype(int)
    ax.set_xticks(ticks + 0.5, [f"{steps[i]:,}" for i in ticks])
    ax.set_xlabel(panel.xlabel or "checkpoint (step)")
    ax.set_ylabel(panel.ylabel or panel.prefix)
    if panel.title:
        ax.set_title(panel.title)
    ax.grid(False)


def draw_figure(spec: FigureSpec, table: Table, phases: dict[str, Any] | None = None,
                width: float = TWO_COLUMN):
    """A matplotlib Figure of `spec` over `table`, with phases shaded on step axes."""
    fig = new_figure(width, spec.height)
    with matplotlib.rc_context(RC):
        axes = fig.subplots(1, len(spec.panels), squeeze=False)[0]
        for ax, panel in zip(axes, spec.panels):
            draw_panel(ax, panel, table)
            if panel.x == "step" and panel.kind == "lines":
                shade_phases(ax, phases)
    return fig


def shade_phases(ax, phases: dict[str, Any] | None) -> None:
    """Shade the phases and mark memorization/generalization on an axes whose x is the step."""
    if not phases:
        return
    for ph in phases.get("phases", []):
        ax.axvspan(ph["start"], ph["end"], color=PHASE_COLOURS.get(ph["name"], "#999999"), alpha=0.12, lw=0)
    for key, style in (("memorization_step", ":"), ("generalization_step", "--")):
        if phases.get(key) is not None:
            ax.axvline(phases[key], color="#555555", ls=style, lw=0.8)


def training_curves(metrics: Table, phases: dict[str, Any] | None = None):
    """Loss and accuracy against step, train and test, phases shaded."""
    fig = new_figure(TWO_COLUMN, 2.4)
    with matplotlib.rc_context(RC):
        ax_loss, ax_acc = fig.subplots(1, 2)
        steps = metrics["step"]
        for split in ("train", "test"):
            loss = np.asarray(metrics[f"{split}_loss"], dtype=float)
            ok = np.isfinite(loss)
            ax_loss.plot(steps[ok], loss[ok], label=f"{split} loss")
            acc = np.asarray(metrics[f"{split}_acc"], dtype=float)
            ok = np.isfinite(acc)
            if ok.any():
                ax_acc.plot(steps[ok], acc[ok], label=f"{split} accuracy")
        ax_loss.set_yscale("log")
        for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.set_xlabel("step")
            ax.set_title(title)
            shade_phases(ax, phases)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(frameon=False)
    return fig


def save_figure(fig, stem: Path) -> list[str]:
    """Write stem.png, stem.pdf, stem.svg atomically; return the file names."""
    names = []
    with matplotlib.rc_context(RC):
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=SAVE_METADATA[fmt])
            atomic_write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue())
            names.append(stem.with_suffix(f".{fmt}").name)
    return names


def figure(width: float = TWO_COLUMN, height: float = 2.4):
    return new_figure(width, height)

"""Drawing: figure specs (`grokscope.specs`) over tables, phase shading, and saving as
PNG/PDF/SVG with the drawn data as CSV. Everything here reads tables and specs; nothing knows a
probe.

One style for every figure: train in blue and test in orange (`style.SPLIT_COLOURS`), the same
label in the same colour in every panel of a figure, one legend below the panels (never over the
data), heatmaps over the step with a colour bar, widths of one or two paper columns.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from grokscope.files import atomic_write_bytes
from grokscope.report.style import (
    LINESTYLES,
    ONE_COLUMN,
    OTHER_COLOURS,
    PHASE_CELL_COLOURS,
    PHASE_COLOURS,
    RC,
    SAVE_METADATA,
    SPLIT_COLOURS,
    TWO_COLUMN,
    new_figure,
)
from grokscope.specs import FigureSpec, Panel, Series
from grokscope.tables import write_table

FORMATS = ("png", "pdf", "svg")
Table = dict[str, np.ndarray]


@dataclass
class Line:
    """One drawn series: its legend label, the column it came from ("" for a fixed `Series`, then
    `fixed`), and its points."""

    label: str
    column: str
    x: np.ndarray
    y: np.ndarray
    fixed: Series | None = None


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


def label_of(panel: Panel, column: str) -> str:
    return dict(panel.labels).get(column, column.replace("_", " "))


def split_of(label: str) -> str | None:
    """"train" or "test" when the label names one split (as a word), else None."""
    words = set(re.split(r"[^a-z0-9]+", label.lower()))
    found = [s for s in ("train", "test") if s in words]
    return found[0] if len(found) == 1 else None


class Palette:
    """Colour and line style per label within one figure: train blue, test orange, the rest
    from the other colours in order; a label seen again keeps its colour and style; a second
    series of the same split in one panel gets the next line style (`next_panel` starts anew)."""

    def __init__(self) -> None:
        self.styles: dict[str, tuple[str, str]] = {}
        self._other = 0
        self._split_count = {"train": 0, "test": 0}

    def __call__(self, label: str, column: str = "") -> tuple[str, str]:
        if label not in self.styles:
            split = split_of(column or label) or split_of(label)
            if split:
                n = self._split_count[split]
                self._split_count[split] += 1
                self.styles[label] = (SPLIT_COLOURS[split], LINESTYLES[n % len(LINESTYLES)])
            else:
                colour = OTHER_COLOURS[self._other % len(OTHER_COLOURS)]
                style = LINESTYLES[(self._other // len(OTHER_COLOURS)) % len(LINESTYLES)]
                self._other += 1
                self.styles[label] = (colour, style)
        return self.styles[label]

    def next_panel(self) -> None:
        self._split_count = {"train": 0, "test": 0}


def source_table(panel: Panel, table: Table, tables: dict[str, Table] | None) -> Table | None:
    if not panel.table:
        return table
    return (tables or {}).get(panel.table)


def panel_lines(panel: Panel, table: Table, tables: dict[str, Table] | None = None) -> list[Line]:
    """What a "lines" or "stack" panel draws (finite points only), references first."""
    src = source_table(panel, table, tables)
    out = [Line(ref.label, "", np.asarray(ref.x, dtype=float), np.asarray(ref.y, dtype=float), ref)
           for ref in panel.references]
    if not src:   # no table (a reproduction's figure: its series are its data), or not this one
        return out
    x = np.asarray(src[panel.x] if panel.x in src else src["step"], dtype=float)
    cols = panel_columns(panel, src) + [c for c in panel.lines if c in src]
    for c in cols:
        y = np.asarray(src[c], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            label = label_of(panel, c)
            out.append(Line(f"run: {label}" if panel.references else label, c, x[ok], y[ok]))
    return out


def _heatmap_data(panel: Panel, table: Table, tables=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    src = source_table(panel, table, tables)
    if src is None:
        return [], np.zeros(0), np.zeros((0, 0))
    cols = panel_columns(panel, src)
    steps = np.asarray(src["step"], dtype=float)
    data = np.stack([np.asarray(src[c], dtype=float) for c in cols]) if cols else np.zeros((0, len(steps)))
    return cols, steps, data


def has_data(panel: Panel, table: Table, tables=None) -> bool:
    if panel.kind == "heatmap":
        cols, steps, data = _heatmap_data(panel, table, tables)
        return bool(cols) and np.isfinite(data).any()
    return bool(panel_lines(panel, table, tables))


def _positive(lines: list[Line]) -> np.ndarray:
    values = np.concatenate([ln.y for ln in lines]) if lines else np.zeros(0)
    return values[np.isfinite(values)]


def _auto_log(lines: list[Line]) -> bool:
    v = _positive(lines)
    return bool(v.size > 0 and v.min() > 0 and v.max() / v.min() > 1e3)


def draw_panel(ax, panel: Panel, table: Table, palette: Palette | None = None,
               tables: dict[str, Table] | None = None) -> None:
    """One panel of a figure spec into a matplotlib Axes."""
    palette = palette or Palette()
    palette.next_panel()
    if panel.kind == "heatmap":
        _heatmap(ax, panel, table, tables)
        return
    lines = panel_lines(panel, table, tables)
    stacked = [ln for ln in lines if panel.kind == "stack" and ln.column and ln.column not in panel.lines]
    if stacked:
        x = stacked[0].x
        same = [ln for ln in stacked if len(ln.x) == len(x) and np.array_equal(ln.x, x)]
        ax.stackplot(x, *[ln.y for ln in same], labels=[ln.label for ln in same],
                     colors=[palette(ln.label, ln.column)[0] for ln in same], alpha=0.8, lw=0)
    others = 0   # fixed series without a split or colour take the "other" colours in order
    for ln in lines:
        if ln in stacked:
            continue
        if ln.fixed is not None and ln.fixed.style:
            others += draw_series(ax, ln.fixed, others)
            continue
        colour, style = palette(ln.label, ln.column)
        if not ln.column:  # a reference curve: markers on a thin line
            ax.plot(ln.x, ln.y, color=colour, ls=style, marker="o", ms=2.5, lw=0.8, label=ln.label)
        else:
            ax.plot(ln.x, ln.y, color=colour, ls=style, lw=1.2 if not panel.references else 0.9,
                    label=ln.label)
    src = source_table(panel, table, tables)
    for col, std_col in panel.bands:
        if src is not None and col in src and std_col in src:
            x = np.asarray(src[panel.x] if panel.x in src else src["step"], dtype=float)
            y, s = np.asarray(src[col], dtype=float), np.asarray(src[std_col], dtype=float)
            ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(s)
            colour = palette(label_of(panel, col), col)[0]
            ax.fill_between(x[ok], (y - s)[ok], (y + s)[ok], color=colour, alpha=0.25, lw=0)
    drawn = [ln for ln in lines if ln.column and ln.column not in panel.lines]
    if panel.annotate_ends and drawn:
        last = drawn[-1]
        ax.plot(last.x[:1], last.y[:1], ls="none", marker="o", mfc="white", mec="black", ms=5, label="run start")
        ax.plot(last.x[-1:], last.y[-1:], ls="none", marker="*", color="black", ms=7, label="run end")
    for mark in panel.marks:
        line = ax.axvline if mark.axis == "x" else ax.axhline
        line(mark.value, color="#555555", ls=mark.style, lw=0.8, label=mark.label or None)
    if panel.title:
        ax.set_title(panel.title, loc=panel.title_loc)
    ax.set_xlabel(panel.xlabel or panel.x)
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel)
    logy = _auto_log(lines) if panel.logy is None else panel.logy
    if panel.logx:
        ax.set_xscale("log")
    if logy and (_positive(lines) > 0).any() and panel.kind != "stack":
        ax.set_yscale("log", nonpositive="mask")  # zeros (e.g. an error term at init) are left out
    if panel.yticks:
        ax.set_yticks([y for y, _ in panel.yticks], [label for _, label in panel.yticks])


def draw_series(ax, s: Series, others: int) -> int:
    """A fixed series in its own style and colour (see `Series`); returns 1 when it took the
    panel's next "other" colour."""
    if s.split in SPLIT_COLOURS:
        colour, took = SPLIT_COLOURS[s.split], 0
    elif s.split and s.split in PHASE_CELL_COLOURS:   # a phase diagram's cells: the sweep report's colours
        colour, took = PHASE_CELL_COLOURS[s.split], 0
    else:
        colour, took = OTHER_COLOURS[(s.colour if s.colour >= 0 else others) % len(OTHER_COLOURS)], 1
    marker = s.style[0] if s.style[:1] in ("o", "s", "x") else None
    line = (s.style[1:] if marker else s.style) or "none"
    ax.plot(np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float), color=colour, marker=marker,
            markersize=s.size, linestyle=line, label=s.label)
    return took


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between neighbouring centres (uneven checkpoint steps stay uneven)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[centres[0] - (mid[0] - centres[0])], mid, [centres[-1] + (centres[-1] - mid[-1])]])


def _heatmap(ax, panel: Panel, table: Table, tables=None) -> None:
    """Columns `prefix<k>` as rows of an image over the steps, with a colour bar."""
    cols, steps, data = _heatmap_data(panel, table, tables)
    if not cols:
        return
    rows = np.array([_suffix_number(c) for c in cols], dtype=float)
    mesh = ax.pcolormesh(_edges(steps), _edges(rows), np.ma.masked_invalid(data), cmap="viridis",
                         shading="flat", rasterized=True)
    if steps[-1] > steps[0]:
        ax.set_xlim(steps[0], steps[-1])
    bar = ax.figure.colorbar(mesh, ax=ax, pad=0.02)
    bar.set_label(panel.clabel or "value")
    bar.outline.set_visible(False)
    ax.set_xlabel(panel.xlabel or "step")
    ax.set_ylabel(panel.ylabel or panel.prefix)
    if panel.title:
        ax.set_title(panel.title)
    ax.grid(False)


def figure_width(spec: FigureSpec, per_row: int) -> float:
    if spec.width == "one" or (not spec.width and per_row == 1):
        return ONE_COLUMN
    return TWO_COLUMN


def draw_figure(spec: FigureSpec, table: Table, phases: dict[str, Any] | None = None,
                tables: dict[str, Table] | None = None, width: float | None = None):
    """A matplotlib Figure of `spec` over `table` (and, for panels that name one, the other
    `tables`; `{}` for a figure of fixed series), with phases shaded on step axes, panels in rows
    of `spec.columns`, and one legend below them."""
    panels = [p for p in spec.panels if has_data(p, table, tables)] or list(spec.panels[:1])
    per_row = spec.columns or len(panels)
    rows = math.ceil(len(panels) / per_row)
    fig = new_figure(width or figure_width(spec, per_row), spec.height + (rows - 1) * (spec.height - 0.5))
    palette = Palette()
    with matplotlib.rc_context(RC):
        axes = fig.subplots(rows, per_row, squeeze=False).flatten()
        for ax, panel in zip(axes, panels):
            draw_panel(ax, panel, table, palette, tables)
            if panel.x == "step" and panel.kind != "heatmap":
                shade_phases(ax, phases)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        figure_legend(fig, axes[:len(panels)])
    return fig


def figure_legend(fig, axes) -> None:
    """One legend for the whole figure, below the panels; each label once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_"):
                entries.setdefault(label, handle)
    if entries:
        width_in = fig.get_figwidth()
        longest = max(len(label) for label in entries)
        ncol = max(1, min(len(entries), int(width_in / (0.35 + 0.055 * longest))))
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=ncol,
                   frameon=False, handlelength=1.8, columnspacing=1.2)


def shade_phases(ax, phases: dict[str, Any] | None) -> None:
    """Shade the phases and mark memorization/generalization on an axes whose x is the step."""
    if not phases:
        return
    for ph in phases.get("phases", []):
        ax.axvspan(ph["start"], ph["end"], color=PHASE_COLOURS.get(ph["name"], "#999999"), alpha=0.12, lw=0,
                   label=ph["name"])
    for key, style, label in (("memorization_step", ":", "memorized"),
                              ("generalization_step", "--", "generalized")):
        if phases.get(key) is not None:
            ax.axvline(phases[key], color="#555555", ls=style, lw=0.8, label=label)


def figure_data(spec: FigureSpec, table: Table, tables: dict[str, Table] | None = None) -> Table:
    """The numbers a figure draws, as a tidy table: panel (number), title, series, column, x, y."""
    rows: dict[str, list] = {k: [] for k in ("panel", "title", "series", "column", "x", "y")}
    panels = [p for p in spec.panels if has_data(p, table, tables)]
    for i, panel in enumerate(panels, 1):
        if panel.kind == "heatmap":
            cols, steps, data = _heatmap_data(panel, table, tables)
            series = [Line(c, c, steps, data[j]) for j, c in enumerate(cols)]
        else:
            series = panel_lines(panel, table, tables)
            src = source_table(panel, table, tables)
            series += [Line(f"{label_of(panel, c)}: std", s, np.asarray(src["step"], dtype=float),
                            np.asarray(src[s], dtype=float)) for c, s in panel.bands if src is not None and s in src]
        for ln in series:
            for x, y in zip(ln.x, ln.y):
                rows["panel"].append(i), rows["title"].append(panel.title or "")
                rows["series"].append(ln.label), rows["column"].append(ln.column)
                rows["x"].append(float(x)), rows["y"].append(float(y))
    types = {"panel": np.int64, "x": np.float64, "y": np.float64}
    return {k: np.array(v, dtype=types.get(k, object)) for k, v in rows.items()}


def save_figure(fig, stem: Path, data: Table | None = None) -> list[str]:
    """Write stem.png, stem.pdf, stem.svg (and stem.csv when `data` is given) atomically;
    return the file names."""
    names = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        for fmt in FORMATS:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, metadata=SAVE_METADATA[fmt])
            atomic_write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue())
            names.append(stem.with_suffix(f".{fmt}").name)
    if data is not None:
        write_table(stem.with_suffix(".csv"), data)
        names.append(stem.with_suffix(".csv").name)
    return names


def figure(width: float = TWO_COLUMN, height: float = 2.4):
    return new_figure(width, height)


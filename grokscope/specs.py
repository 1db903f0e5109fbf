"""What a probe tells the report about its table, as data: figure specs, headline claims, and the
columns the summary leaves out. Stored as `<probe>.spec.json` beside `<probe>.csv` in the
analysis directory, so the report draws every figure from tables and specs alone (without
importing any probe) and a probe that declares nothing still gets its columns plotted.

    FigureSpec("ntk_spectrum", panels=(
        Panel(prefix="ntk_top", max_lines=5, columns=("ntk_trace",), logy=True, title="NTK eigenvalues"),
        Panel(columns=("ntk_effective_rank",), title="effective rank"),
    ))

A reproduction's figure is a `FigureSpec` too, its lines all `Series` of fixed data (written as its
`figure.json`). This module owns the `<probe>.spec.json` format and nothing else: no drawing, no
matplotlib.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grokscope.files import atomic_write_json, read_json

SPEC_SUFFIX = ".spec.json"
PANEL_KINDS = ("lines", "heatmap", "stack")
WIDTHS = ("", "one", "two")


@dataclass(frozen=True)
class Series:
    """A fixed curve: drawn under a table's columns (a landscape the run moves over), or all of a
    panel's data (a reproduction's figure, whose lines come from its runs).

    `style`: "" (the default) draws a reference's look, small dots on a thin line in the
    palette's colour and line style; otherwise a matplotlib line style after an optional marker
    ("-", "--", "o-", "o", "s" for a phase diagram's square cells), in the colour below. `split`: "train" or "test", or a phase ("grokking", ...),
    for its fixed colour; else `colour` >= 0 picks an "other" colour by index (one colour per
    setting across panels), and -1 the panel's next. `size`: the marker size."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    split: str = ""
    style: str = ""
    colour: int = -1
    size: float = 3.0


@dataclass(frozen=True)
class Mark:
    """A reference line: vertical (`axis="x"`) or horizontal (`axis="y"`) at `value`."""

    value: float
    label: str = ""
    axis: str = "x"
    style: str = ":"


@dataclass(frozen=True)
class Panel:
    """One axes. "lines": each chosen column against `x`; "heatmap": the columns `prefix<k>`
    (sorted by the integer k, `exclude` left out) as rows of an image over the steps, with a
    colour bar labelled `clabel`; "stack": the chosen columns stacked (parts of a whole), with
    the columns in `lines` drawn as lines on top.

    `table`: draw from another table of the analysis directory (e.g. "training", the run's own
    metrics) instead of the probe's. `labels`: (column, legend label) pairs; a column without one
    is labelled by its name with "_" read as a space. `bands`: (column, std column) pairs drawn as
    a shaded band of column ± std around the column's line. Columns named with "train" or "test" get
    the train and test colours of every figure.

    Columns: `columns` in order, then (when `prefix` is set) every column starting with it, at
    most `max_lines`; with neither, every numeric column. `logy=None`: logarithmic when the
    values are positive and span more than three decades. Panels with x = "step" get the run's
    phases shaded and its memorization and generalization steps marked."""

    columns: tuple[str, ...] = ()
    prefix: str = ""
    exclude: tuple[str, ...] = ()
    max_lines: int = 8
    kind: str = "lines"
    x: str = "step"
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    logy: bool | None = None
    marks: tuple[Mark, ...] = ()
    references: tuple[Series, ...] = ()
    annotate_ends: bool = False    # mark the first and last points ("start", "end")
    table: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    clabel: str = ""
    lines: tuple[str, ...] = ()
    bands: tuple[tuple[str, str], ...] = ()   # (column, its std column): shaded column ± std
    yticks: tuple[tuple[float, str], ...] = ()  # (y, label): e.g. a phase diagram's rows at their index
    title_loc: str = "center"   # "left" for a paper's lettered panels, "(a) ..."


@dataclass(frozen=True)
class FigureSpec:
    """One figure, saved as `figures/<name>.png/.pdf/.svg` with the data it draws in
    `figures/<name>.csv`: its panels side by side (`columns` to a row; 0: all in one row), one
    legend below them. `width`: "one" (a paper's column, 3.3 in), "two" (full width, 6.8 in) or
    "" (one column for a single panel a row, else two). `height`: the first row's, legend
    included; each further row adds `height` - 0.5 in. Panels with nothing to draw are left out.
    `caption`: the sentence a page prints under it (a reproduction's settings)."""

    name: str
    panels: tuple[Panel, ...] = (Panel(),)
    height: float = 2.6
    width: str = ""
    columns: int = 0
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FigureSpec":
        return _build(cls, data)


@dataclass(frozen=True)
class Headline:
    """A claim the report's summary states from one column: "change" says how it went from its
    first to its last value and between which steps most of that happened (nothing when it did
    not change); "last" states the last value (words separated by spaces are listed). Non-finite
    values are left out."""

    column: str
    label: str
    kind: str = "change"
    digits: int = 2
    only_if_generalized: bool = False   # e.g. key frequencies mean nothing in a model that never generalized


@dataclass(frozen=True)
class ReportSpec:
    """Everything the report knows of one probe's table."""

    probe: str
    description: str = ""
    notes: str = ""
    figures: tuple[FigureSpec, ...] = ()
    headlines: tuple[Headline, ...] = ()
    quiet: tuple[str, ...] = ()    # column prefixes the "what moved first" summary leaves out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReportSpec":
        return _build(cls, data)


def default_figures(name: str) -> tuple[FigureSpec, ...]:
    """Every numeric column against step: what a probe that declares no figure gets."""
    return (FigureSpec(name, (Panel(title=name),)),)


def _build(cls: type, data: Any) -> Any:
    """A frozen dataclass from its `asdict` form, nested dataclasses and tuples included."""
    if not dataclasses.is_dataclass(cls) or not isinstance(data, dict):
        return data
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in hints:
            continue  # a field of a newer grokscope: ignored, not an error
        kwargs[key] = _value(cls, key, value)
    return cls(**kwargs)


_NESTED = {(ReportSpec, "figures"): FigureSpec, (ReportSpec, "headlines"): Headline,
           (FigureSpec, "panels"): Panel, (Panel, "marks"): Mark, (Panel, "references"): Series}


def _value(cls: type, key: str, value: Any) -> Any:
    inner = _NESTED.get((cls, key))
    if inner is not None:
        return tuple(_build(inner, v) for v in value)
    if isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)  # e.g. labels' pairs
    return value


def spec_path(out: str | os.PathLike, probe: str) -> Path:
    return Path(out) / f"{probe}{SPEC_SUFFIX}"


def write_spec(out: str | os.PathLike, spec: ReportSpec) -> Path:
    path = spec_path(out, spec.probe)
    atomic_write_json(path, spec.to_dict())
    return path


def read_spec(out: str | os.PathLike, probe: str) -> ReportSpec:
    """The stored spec of `probe`, or the default one (its columns against step) where an
    analysis directory predates spec files or the probe declared nothing."""
    path = spec_path(out, probe)
    if path.exists():
        spec = ReportSpec.from_dict(read_json(path))
        if spec.figures:
            return spec
        return dataclasses.replace(spec, figures=default_figures(probe))
    return ReportSpec(probe, figures=default_figures(probe))


__all__ = ["FigureSpec", "Headline", "Mark", "Panel", "ReportSpec", "Series", "default_figures",
           "read_spec", "spec_path", "write_spec"]

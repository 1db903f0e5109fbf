"""`grokscope reproduce`: the seed papers' headline results at the papers' own settings, with
the paper's numbers beside ours.

A reproduction is data plus two pure functions. Its `parts(scale)` name the runs it needs, each
part a preset with a grid (a sweep: skipped when complete, resumed when interrupted, trained
stacked where it can) and the probes to run over each run's checkpoints. Its `checks(scale,
data)` turn the runs' metrics and probe tables into `Check`s (paper value, ours, tolerance,
source), and its `figure(scale, data)` into a `FigureSpec` (`paper_panel`s of fixed `Series`, as data,
drawn like every figure). The
report layer (`report.reproduction`) draws the figure and writes the page from those files:

    <out>/<part>/runs/<run>/              the sweep's run directories (and its phase tables)
    <out>/<part>/analyses/<run>/          each run's probe tables
    <out>/figure.{png,pdf,svg,csv,json}   the figure laid out like the paper's; .json its layout
    <out>/results.csv, results.json       quantity | paper | ours | within tolerance? | source
    <out>/report.md, report.html          the page: settings, figure, table, what differs and why

`quick` fits the test suite (a minute or two, qualitative checks); `full` is the paper's scale.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from grokscope.errors import UsageError
from grokscope.specs import FigureSpec, Mark, Series
from grokscope.specs import Panel as SpecPanel

SCALES = ("quick", "full")


@dataclass(frozen=True)
class Part:
    """One sweep of a reproduction: `preset` over `grid` ("model.alpha=0.5,1,2"), with
    `overrides` ("train.steps=3000"); `probes` (comma list, "" for none) run over `count`
    checkpoints of every run (of those at the grid values `probe_only` names, when given). `checkpoints` = 0 keeps the preset's dense schedule (probes need
    it), > 0 keeps that many log-spaced checkpoints."""

    name: str
    preset: str
    grid: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    seeds: str | None = None
    probes: str = ""
    probe_only: tuple[tuple[str, Any], ...] = ()   # probe only the runs at these grid values
    count: int = 40
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoints: int = 0
    landscape: str = ""   # "0.1:10:11:log": an Omnigrok landscape over these norm scales instead of a sweep
    needs_data: bool = False   # MNIST: the command's --data-dir becomes task.data_dir


@dataclass(frozen=True)
class Check:
    """One headline number: the paper's value, ours, whether ours is within `tolerance` (None:
    not judged at this scale), and where the paper's value comes from."""

    quantity: str
    paper: str
    ours: str
    ok: bool | None
    tolerance: str
    source: str
    note: str = ""

    def __post_init__(self):  # numpy's bools become Python's (results.json, `is True` in tests)
        object.__setattr__(self, "ok", None if self.ok is None else bool(self.ok))


VLINE_STYLES = (":", "--", "-.")   # a panel's vertical lines, one style each: the legend tells them apart


def paper_panel(title: str, series, *, xlabel: str = "step", ylabel: str = "", logx: bool = False,
                logy: bool = False, vlines=(), yticks=()) -> SpecPanel:
    """A paper's lettered panel ("(a) ...", titled at the left) whose lines are fixed `Series`
    taken from the runs. `vlines`: (label, x) pairs, e.g. the paper's transition step; `yticks`:
    (y, label) pairs, e.g. a phase diagram's rows drawn at their index and labelled by value."""
    marks = tuple(Mark(float(x), label, style=VLINE_STYLES[i % len(VLINE_STYLES)])
                  for i, (label, x) in enumerate(vlines))
    return SpecPanel(title=title, references=tuple(series), xlabel=xlabel, ylabel=ylabel, logx=logx, logy=logy,
                 marks=marks, yticks=tuple(yticks), title_loc="left")


def paper_figure(panels, caption: str = "", columns: int = 0) -> FigureSpec:
    """A reproduction's figure: `columns` panels to a row (0: all in one), the caption under it."""
    return FigureSpec("figure", tuple(panels), height=2.4, columns=columns, caption=caption)


Panel, Figure = paper_panel, paper_figure   # their names before reproductions drew with report.figures


@dataclass
class RunData:
    """One trained run as the checks see it: its grid coordinates, seed, metrics table, run.json
    and its probes' tables."""

    name: str
    coords: dict[str, Any]
    seed: int
    status: str
    metrics: dict[str, np.ndarray]
    info: dict[str, Any]
    tables: dict[str, dict[str, np.ndarray]]


Data = dict[str, list[RunData]]   # part name -> its runs, in grid order


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    paper: str                                  # "Kumar et al. 2024, App. 8.3 and Fig. 2"
    summary: str                                # what the paper shows, one paragraph
    parts: Callable[[str], list[Part]]
    checks: Callable[[str, Data], list[Check]]
    figure: Callable[[str, Data], FigureSpec]
    settings: tuple[tuple[str, str, str], ...] = ()   # (setting, value, paper section)
    notes: Callable[[str, Data], list[str]] = lambda scale, data: []
    # name -> columns: tables written beside the results as <name>.csv (a phase diagram's cells)
    tables: Callable[[str, Data], dict[str, dict[str, list]]] = lambda scale, data: {}
    # scale -> its wall time on 2 cores in round words ("about an hour"); the measured times are in
    # docs/reproductions.md, written from the pages' own timings
    minutes: dict[str, str] = field(default_factory=dict)


def registry() -> dict[str, Reproduction]:
    from grokscope.reproduce import exploring, kumar, liu, nanda, omnigrok

    return {r.name: r for r in (*nanda.REPRODUCTIONS, *kumar.REPRODUCTIONS, *liu.REPRODUCTIONS,
                                *omnigrok.REPRODUCTIONS, *exploring.REPRODUCTIONS)}


def get(name: str) -> Reproduction:
    known = registry()
    if name not in known:
        raise UsageError(f"unknown reproduction {name!r}; choose one of {', '.join(known)} "
                         "(grokscope reproduce lists them)")
    return known[name]


def default_out(name: str, scale: str, overrides: tuple[str, ...] = ()) -> Path:
    """reproductions/<name>/<scale>, with the overrides in the folder's name when there are any
    (a run changed by --set is another run, never reused for the paper's own)."""
    from grokscope.config import overrides_name

    return Path("reproductions") / name / overrides_name(scale, overrides)


def reproduce(name: str, scale: str = "quick", *, out: str | os.PathLike | None = None, jobs: int = 2,
              device: str = "cpu", progress: bool = True, gallery: str | os.PathLike | None = None,
              data_dir: str | os.PathLike | None = None, only: list[str] | None = None,
              overrides: tuple[str, ...] | list[str] = ()) -> Path:
    """Train what the reproduction needs (reusing finished runs, resuming interrupted ones), run
    its probes, compute its checks and write its figure and page. Returns the output directory.
    `gallery` also copies the figure, the results and the page to `<gallery>/<name>/` (what
    docs/reproductions.md shows). `only`: train and judge these parts alone (a long reproduction
    in pieces); the checks of the others are left out, and the page says so. `overrides`
    (`section.key=value`, as `train --set`): applied to every run, after each part's own; the
    page's command line names them (for example `train.flush_denormals=true`, to see whether a
    setting moves any of the paper's numbers)."""
    if scale not in SCALES:
        raise UsageError(f"unknown --scale {scale!r}; choose quick or full")
    repro = get(name)
    overrides = tuple(overrides)
    out = Path(out) if out is not None else default_out(name, scale, overrides)
    t0 = time.perf_counter()
    tally = Tally()
    parts = repro.parts(scale)
    if only is not None:
        names = [p.name for p in parts]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UsageError(f"unknown part {unknown[0]!r} of {name} at scale {scale}; its parts: {', '.join(names)}")
        parts = [p for p in parts if p.name in only]
    if any(p.needs_data for p in parts) and not data_dir:
        raise UsageError(f"{name} needs MNIST: pass --data-dir DIR (the official IDX files; grokscope downloads "
                         "nothing, see docs/omnigrok.md)")
    from grokscope.config import load_preset, with_overrides

    for part in parts:  # a wrong key or value: one line now, not after the first part has trained
        with_overrides(load_preset(part.preset), [*part.overrides, *overrides])
    data = {part.name: train_and_measure(part, out / part.name, tally, jobs=jobs, device=device, progress=progress,
                                         overrides=((f"task.data_dir={Path(data_dir).resolve()}",)
                                                    if part.needs_data else ()) + overrides)
            for part in parts}
    checks = repro.checks(scale, data)
    figure = repro.figure(scale, data)
    from grokscope.report.reproduction import write_reproduction

    meta = {"name": repro.name, "title": repro.title, "paper": repro.paper, "summary": repro.summary,
            "scale": scale, "command": f"grokscope reproduce {repro.name} --scale {scale}"
                                       + (f" --parts {','.join(only)}" if only is not None else "")
                                       + "".join(f" --set {item}" for item in overrides),
            "settings": [list(s) for s in repro.settings], "notes": repro.notes(scale, data),
            "parts": [dataclasses.asdict(p) for p in parts],
            "seconds": round(time.perf_counter() - t0, 1), "runs_reused": len(tally.reused), "runs": tally.runs,
            "reused_from": tally.versions()}
    tables = repro.tables(scale, data)
    meta["tables"] = sorted(tables)
    write_reproduction(out, meta, [dataclasses.asdict(c) for c in checks], figure_to_json(figure), tables)
    if gallery is not None:
        from grokscope.report.reproduction import copy_to_gallery

        copy_to_gallery(out, Path(gallery) / name, [f"{t}.csv" for t in sorted(tables)])
    if progress:
        judged = [c for c in checks if c.ok is not None]
        print(f"reproduce {name} ({scale}): {sum(c.ok for c in judged)}/{len(judged)} checks within tolerance "
              f"-> {out / 'report.md'}", file=sys.stderr)
    return out


@dataclass
class Tally:
    """What one `reproduce` call trained and reused: the page's time covers only what it trained,
    and it names the code the reused runs were trained by."""

    runs: int = 0
    reused: list[Path] = field(default_factory=list)

    def count(self, paths: list[Path]) -> None:
        from grokscope.store import run_status

        self.runs += len(paths)
        self.reused += [p for p in paths if run_status(p) == "complete"]

    def versions(self) -> list[str]:
        """'grokscope 0.1.0, training version 1' for each distinct pair among the reused runs."""
        from grokscope.files import read_json

        seen = set()
        for path in self.reused:
            info = read_json(path / "run.json")
            seen.add(f"grokscope {info.get('grokscope_version', '?')}, training version "
                     f"{info.get('training_version', 'unrecorded')}")
        return sorted(seen)


def train_and_measure(part: Part, out: Path, tally: Tally | None = None, *, jobs: int, device: str, progress: bool,
                      overrides: tuple[str, ...] = ()) -> list[RunData]:
    from grokscope.analysis import analyze
    from grokscope.experiments.sweep import expand, parse_grid, sweep
    from grokscope.store import Run
    from grokscope.tables import read_manifest, read_table, table_path

    part = dataclasses.replace(part, overrides=(*part.overrides, *overrides))
    tally = tally if tally is not None else Tally()
    if part.landscape:
        return landscape_runs(part, out, tally, jobs=jobs, device=device, progress=progress)
    points = expand([part.preset], [parse_grid(g) for g in part.grid], part.seeds, list(part.overrides),
                    part.checkpoints)
    tally.count([out / "runs" / p.name for p in points])
    sweep(part.preset, list(part.grid), seeds=part.seeds, overrides=list(part.overrides), out=out, jobs=jobs,
          checkpoints=part.checkpoints, device=device, progress=progress)
    runs = []
    for p in points:
        run = Run(out / "runs" / p.name)
        tables = {}
        if part.probes and run.steps and all(p.coords.get(k) == v for k, v in part.probe_only):
            where = out / "analyses" / p.name
            few = 0 < part.count <= 4   # a handful of checkpoints does not pay for starting worker processes
            analyze(run, part.probes, out=where, count=part.count, jobs=1 if few else jobs, device=device,
                    params=part.params or None, progress=progress, report=False)
            for probe, entry in read_manifest(where).get("probes", {}).items():
                if entry.get("status") == "ok" and table_path(where, probe).exists():
                    tables[probe] = read_table(table_path(where, probe))
        runs.append(RunData(p.name, dict(p.coords), p.seed, run.status, run.metrics, run.info, tables))
    return runs


def landscape_runs(part: Part, out: Path, tally: Tally, *, jobs: int, device: str, progress: bool) -> list[RunData]:
    """Omnigrok's landscape: the preset trained at each norm scale with the norm held there
    (`experiments.landscape`); one RunData per scale, coords {"scale": s}."""
    from grokscope.config import load_preset, with_overrides
    from grokscope.experiments.landscape import landscape, parse_scales
    from grokscope.store import Run

    scales = parse_scales(part.landscape)
    tally.count([out / f"scale_{s:g}" for s in scales])
    landscape(with_overrides(load_preset(part.preset), list(part.overrides)), scales, out, jobs=jobs,
              progress=progress, device=device)
    runs = []
    for s in scales:
        run = Run(out / f"scale_{s:g}")
        runs.append(RunData(run.path.name, {"scale": s}, run.config.train.seed, run.status, run.metrics, run.info, {}))
    return runs


def figure_to_json(figure: FigureSpec) -> dict[str, Any]:
    return figure.to_dict()


# ---------------------------------------------------------------- helpers the checks share

def first_step(metrics: dict[str, np.ndarray], column: str, at_least: float | None = None,
               at_most: float | None = None) -> int | None:
    """The first logged step at which `column` >= at_least (or <= at_most), else None."""
    values = np.asarray(metrics[column], dtype=float)
    hit = values >= at_least if at_least is not None else values <= at_most
    idx = np.flatnonzero(hit)
    return int(metrics["step"][idx[0]]) if len(idx) else None


def thin(x: np.ndarray, y: np.ndarray, n: int = 400, log: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """At most about `n` points of a curve (evenly spaced in x, or in log x), for the figure's CSV."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) > n:
        grid = (np.unique(np.geomspace(max(x[0], 1), x[-1], n).round()) if log else np.linspace(x[0], x[-1], n))
        idx = np.unique(np.clip(np.searchsorted(x, grid), 0, len(x) - 1))
        if x[0] < 1:
            idx = np.unique(np.r_[0, idx])
        x, y = x[idx], y[idx]
    return tuple(float(v) for v in x), tuple(float(v) for v in y)


def fmt_step(step: int | float | None) -> str:
    """`console.format_step`: the reproductions' checks write steps as every page does."""
    from grokscope.console import format_step

    return format_step(step)


def within_factor(ours: float | None, paper: float, factor: float) -> bool:
    return ours is not None and paper / factor <= ours <= paper * factor


__all__ = ["Check", "Data", "Figure", "Panel", "Part", "Reproduction", "RunData", "SCALES", "Series",
           "default_out", "first_step", "fmt_step", "get", "paper_figure", "paper_panel", "registry", "reproduce", "thin",
           "within_factor"]

"""Sweeps: grids of configs trained into one directory, then classified into phases.

    sweep_dir/
      sweep.json                 the spec: presets, grid axes, seeds, overrides, every run
      runs/<name>/               one run directory per point (the run-directory contract)
      phases.csv                 one row per run: coordinates, seed, steps to 90%, lag, phase
      phase_diagram.{csv,png,pdf,svg}, steps_to_generalize.{png,pdf,svg}, curves.{png,pdf,svg}
      report.md, report.html     the phase table and the figures

Run names are deterministic (`<preset>_<key><value>..._s<seed>`), so re-running the same command
skips complete runs and resumes interrupted ones. Work is cut into units: a unit is one run, or a
group of compatible runs trained stacked (`training.stacked`). Units go to local processes
(default: both cores), to a Ray cluster (`executor="ray"`) or to Slurm as one job array through
submitit (`executor="slurm"`); the same run directories come out.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from grokscope.console import ProgressLine
from grokscope.errors import UsageError
from grokscope.experiments.executors import (  # noqa: F401  (run_unit, _init_worker: their old home's names)
    SlurmOptions,
    _init_worker,
    _run_local,
    _run_ray,
    _run_slurm,
    check_slurm,
    plan_units,
    run_unit,
)
from grokscope.experiments.grid import Axis, Point, expand, parse_grid, parse_seeds  # noqa: F401
from grokscope.files import atomic_write_json
from grokscope.store import run_status
from grokscope.training import TrainingInterrupted

EXECUTORS = ("local", "ray", "slurm")
VECTORIZE = ("auto", "always", "never")


def sweep(presets: list[str] | str, grids: list[str] | list[Axis] = (), *, seeds: str | None = None,
          overrides: list[str] = (), out: str | os.PathLike | None = None, jobs: int = 2,
          executor: str = "local", address: str | None = None, vectorize: str = "auto",
          slurm: SlurmOptions | None = None, device: str = "cpu",
          checkpoints: int = 10, lag: int = 1000, threshold: float = 0.9,
          progress: bool = True, dry_run: bool = False) -> Path:
    """Train every point of the grid (skipping complete runs, resuming interrupted ones), then
    classify phases and write the tables, figures and report. Returns the sweep directory.
    `dry_run` prints the plan (every run's name and state, the stacked groups) and writes nothing."""
    presets = list(dict.fromkeys([presets] if isinstance(presets, str) else presets))
    if executor not in EXECUTORS:
        raise UsageError(f"unknown --executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if vectorize not in VECTORIZE:
        raise UsageError(f"unknown --vectorize {vectorize!r}; choose one of {', '.join(VECTORIZE)}")
    if executor == "slurm":
        check_slurm(slurm or SlurmOptions())
    axes = [g if isinstance(g, Axis) else parse_grid(g) for g in grids]
    points = expand(presets, axes, seeds, overrides, checkpoints)
    out = Path(out) if out is not None else Path("checkpoints") / f"sweep-{'-'.join(presets)}"
    run_dir = out / "runs"
    spec = {"presets": presets, "grid": [dataclasses.asdict(a) for a in axes], "seeds": seeds,
            "overrides": list(overrides), "checkpoints": checkpoints,
            "runs": [{"name": p.name, "preset": p.preset, "seed": p.seed, "coords": p.coords}
                     for p in points]}
    units = plan_units(points, run_dir, jobs, vectorize, device)
    if dry_run:
        _print_plan(points, units, run_dir, out)
        return out
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", spec)
    for i, unit in enumerate(units):
        unit["device"] = device
        if unit["vectorized"]:
            unit["status"] = str(out / ".status" / f"unit{i}.json")
    n_done = len(points) - sum(len(u["runs"]) for u in units)
    stacked = sum(len(u["runs"]) for u in units if u["vectorized"])
    if progress:
        print(f"sweep: {len(points)} runs ({n_done} complete, {stacked} to train stacked, "
              f"{len(points) - n_done - stacked} one by one) -> {out}", file=sys.stderr)
    bar = ProgressLine(len(points), start=n_done, label="run", enabled=progress)
    bar.update(n_done, force=True)
    t0 = time.perf_counter()
    try:
        if executor == "ray":
            _run_ray(units, address, bar, n_done)
        elif executor == "slurm" and units:
            _run_slurm(units, out, slurm or SlurmOptions(), bar, n_done)
        else:
            _run_local(units, jobs, bar, n_done)
    except (KeyboardInterrupt, TrainingInterrupted) as e:
        bar.close()
        if executor == "slurm" and isinstance(e, TrainingInterrupted):
            raise
        raise TrainingInterrupted(f"sweep interrupted; run the same command again to resume ({out})") from None
    bar.close()
    if progress and units:
        print(f"sweep: trained {len(points) - n_done} runs in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
    from grokscope.experiments.phase_table import write_phase_tables
    from grokscope.report.sweep import write_sweep_report

    table, cell_rows = write_phase_tables(out, points, [a.key for a in axes], threshold=threshold, lag=lag)
    write_sweep_report(out, spec, points, axes, table, cell_rows, lag=lag, threshold=threshold)
    return out


def _print_plan(points: list[Point], units: list[dict], run_dir: Path, out: Path) -> None:
    how = {}
    for i, unit in enumerate(units):
        for _, path in unit["runs"]:
            how[Path(path).name] = (f"stacked group {i} ({len(unit['runs'])} runs)" if unit["vectorized"]
                                    else "alone")
    n_done = len(points) - len(how)
    print(f"{out}: {len(points)} runs, {n_done} complete, {len(how)} to train in {len(units)} units")
    for p in points:
        state = run_status(run_dir / p.name)
        todo = how.get(p.name)
        print(f"  {p.name:60s} {state or 'new':12s} {todo or '-'}")

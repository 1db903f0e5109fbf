"""Liu et al.'s phase diagram of the toy model: 16 decoder learning rates (1e-5..1e-2, log) x 11
decoder weight decays (0..10), 176 runs of 10,000 steps, through `grokscope sweep` on this
machine (2 local processes, stacked training chosen automatically), against the plain trainer
running a subset of the same runs one after another (default torch threads), side by side.

    python bench/sweep.py [--steps 10000] [--log-every 1] [--subset 8] [--out DIR]
                          [--figures docs/figures] [--compare OLD_SWEEP_DIR]

Prints the wall times, the sequential time extrapolated to all runs, the speedup, and whether
the subset's phases agree between the two trainers. The paper's 1e5-step diagram as the `liu`
reproduction trains it: `--steps 100000 --log-every 10 --subset 0`; `--compare` then checks
every run against an earlier sweep of the same grid (for example one trained by an earlier
grokscope: `reproductions/liu/full/phase`): the same phase, and the steps at which train and
test accuracy first reached 90%.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from grokscope.experiments.sweep import expand, parse_grid, sweep
from grokscope.measures.transitions import classify_phase
from grokscope.store import load_run
from grokscope.training import train

GRID = ["optim.lr=1e-5:1e-2:16:log", "optim.weight_decay=0:10:11"]


def read_phases(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "phases.csv", newline="") as fh:
        return {row["name"]: row for row in csv.DictReader(fh)}


def compare(new: dict, old: dict) -> None:
    """Each run's phase and the steps at which train and test accuracy first reached 90%,
    against an earlier sweep of the same grid."""
    names = sorted(set(new) & set(old))
    same_phase = sum(new[n]["phase"] == old[n]["phase"] for n in names)
    shifts = [abs(float(new[n][k]) - float(old[n][k])) for n in names for k in ("train_step", "test_step")
              if new[n][k] and old[n][k]]
    print(f"  against {len(names)} runs of the earlier sweep: the same phase in {same_phase}/{len(names)}; "
          f"steps to 90% moved by at most {max(shifts, default=0):.0f} (median {np.median(shifts or [0]):.0f})")
    for n in names:
        if new[n]["phase"] != old[n]["phase"]:
            print(f"    {n}: {old[n]['phase']} -> {new[n]['phase']} "
                  f"(train {old[n]['train_step']} -> {new[n]['train_step']}, "
                  f"test {old[n]['test_step']} -> {new[n]['test_step']})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--log-every", type=int, default=1, help="train.log_every (the liu reproduction: 10)")
    ap.add_argument("--subset", type=int, default=8, help="runs the plain trainer repeats (0: none)")
    ap.add_argument("--compare", help="an earlier sweep directory of the same grid to compare phases with")
    ap.add_argument("--out", help="keep the sweep here (default: a temporary folder)")
    ap.add_argument("--figures", help="copy phase_diagram.* and steps_to_generalize.* here")
    args = ap.parse_args()
    sets = [f"train.steps={args.steps}"] + ([f"train.log_every={args.log_every}"] if args.log_every != 1 else [])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp) / "liu-phase"
        t0 = time.perf_counter()
        sweep("liu-toy", GRID, overrides=sets, out=out, jobs=2, progress=True)
        t_sweep = time.perf_counter() - t0
        points = expand(["liu-toy"], [parse_grid(g) for g in GRID], None, sets)
        subset = [points[i] for i in np.linspace(0, len(points) - 1, args.subset).round().astype(int)]
        print(f"phase diagram: {len(points)} runs x {args.steps:,} steps, metrics every {args.log_every}")
        print(f"  grokscope sweep (2 processes, stacked): {t_sweep:8.1f} s  ({t_sweep / len(points):.2f} s/run)")
        if subset:
            t0 = time.perf_counter()
            agree = 0
            for p in subset:
                plain = train(p.config, Path(tmp) / "plain" / p.name, progress=False)
                m, v = plain.metrics, load_run(out / "runs" / p.name).metrics
                agree += (classify_phase(m["step"], m["train_acc"], m["test_acc"])[0]
                          == classify_phase(v["step"], v["train_acc"], v["test_acc"])[0])
            t_plain = (time.perf_counter() - t0) / len(subset)
            print(f"  plain trainer, one after another:       {t_plain * len(points):8.1f} s  "
                  f"(measured {t_plain:.2f} s/run on {len(subset)} runs, extrapolated)")
            print(f"  speedup: {t_plain * len(points) / t_sweep:.1f}x")
            print(f"  subset phases agree (stacked vs plain): {agree}/{len(subset)}")
        if args.compare:
            compare(read_phases(out), read_phases(Path(args.compare)))
        counts = {}
        for line in (out / "phases.csv").read_text().splitlines()[1:]:
            phase = line.rsplit(",", 1)[-1]
            counts[phase] = counts.get(phase, 0) + 1
        print(f"  phases: {counts}")
        if args.figures:
            for stem in ("phase_diagram", "steps_to_generalize"):
                for ext in ("png", "pdf", "svg"):
                    shutil.copy(out / f"{stem}.{ext}", Path(args.figures) / f"liu_{stem}.{ext}")
            shutil.copy(out / "phase_diagram.csv", Path(args.figures) / "liu_phase_diagram.csv")


if __name__ == "__main__":
    main()

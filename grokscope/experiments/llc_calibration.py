"""`grokscope llc-calibrate RUN [--step S]`: SGLD's step size ε and inverse temperature nβ swept on
one checkpoint, the loss traces and λ̂ of each setting drawn, and a setting recommended with the
reason (devinterp's calibration advice, as a rule).

The rule: a setting is *clean* when `llc_diagnostics` finds nothing (no diverged chain, no loss
spikes, a trace that has flattened, a positive estimate); it is *stable* when it is clean and its
λ̂ agrees within 25% with the clean λ̂ at the next smaller ε and the same nβ (a step small enough
that shrinking it further does not move the estimate). The recommendation is the stable setting
with the largest ε (the fastest mixing), ties going to the nβ closest to the probe's default; with
no stable setting, the clean one with the smallest ε; with no clean one, none, and why.

Writes to `<out>` (default `analyses/<run>/llc-calibration/`): `calibration.csv` (one row per
setting: ε, nβ, λ̂ mean and std, the warnings, clean, stable), `traces.csv` (the mean loss trace
over chains per setting, by draw), `recommendation.json`, and
`figures/llc_calibration.png/.pdf/.svg/.csv`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from grokscope.console import ProgressLine
from grokscope.errors import UsageError
from grokscope.files import atomic_write_json
from grokscope.measures.llc import SGLDSettings, estimate_llc, llc_diagnostics
from grokscope.measures.losses import loss_and_accuracy
from grokscope.specs import FigureSpec, Panel
from grokscope.store import Run
from grokscope.tables import write_table
from grokscope.tasks import task_targets

EPSILONS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
NBETAS = (2.0, 10.0, 30.0, 100.0)
AGREE = 0.25


def calibrate(run: Run, step: int | None = None, *, epsilons=EPSILONS, nbetas=NBETAS,
              base: SGLDSettings = SGLDSettings(chains=2), out: str | os.PathLike | None = None,
              progress: bool = True) -> dict:
    """Sweep ε × nβ on the checkpoint at `step` (the last one by default); returns the
    recommendation (also written to `out`)."""
    steps = run.steps
    if not steps:
        raise UsageError(f"{run.path} has no checkpoints to calibrate on")
    if step is None:
        step = steps[-1]
    if step not in steps:
        raise UsageError(f"{run.path} has no checkpoint at step {step:,}; it has {steps[0]:,} … {steps[-1]:,} "
                         f"({len(steps)} checkpoints): pass one of them to --step")
    task, kind = run.task, run.config.train.loss
    targets = task_targets(task)
    model = run.model(step).requires_grad_(True)

    def loss_fn(o, y):
        return loss_and_accuracy(o, y, kind, torch.float32, targets)[0]

    rows, traces = [], {}
    bar = ProgressLine(len(epsilons) * len(nbetas), label="setting", enabled=progress)
    for b in nbetas:
        for e in epsilons:
            settings = SGLDSettings(**{**base.as_dict(), "epsilon": float(e), "nbeta": float(b)})
            r = estimate_llc(model, task.train_inputs, task.train_labels, loss_fn, settings)
            warnings = llc_diagnostics(r["trace"], r["init_loss"], r["per_chain"])
            rows.append({"epsilon": float(e), "nbeta": float(b), "llc_mean": r["mean"], "llc_std": r["std"],
                         "warnings": "; ".join(warnings), "clean": not warnings})
            finite = r["trace"][np.isfinite(r["trace"]).all(axis=1)]
            traces[f"eps{e:g}_nbeta{b:g}"] = (finite.mean(axis=0) if len(finite) else
                                              np.full(settings.draws, np.nan)) - r["init_loss"]
            bar.update(len(rows), force=True)
    bar.close()
    mark_stable(rows)
    rec = recommend(rows, base.resolved_nbeta(len(task.train_inputs)))
    rec.update(run=str(run.path), step=step, chains=base.chains, draws=base.draws, burnin=base.burnin,
               batch_size=base.batch_size)
    if out is not None:
        write_outputs(Path(out), rows, traces, rec)
    return rec


def mark_stable(rows: list[dict]) -> None:
    """`stable`: clean, and within 25% of the clean λ̂ at the next smaller ε with the same nβ."""
    for r in rows:
        smaller = [q for q in rows if q["nbeta"] == r["nbeta"] and q["epsilon"] < r["epsilon"] and q["clean"]]
        prev = max(smaller, key=lambda q: q["epsilon"]) if smaller else None
        r["stable"] = bool(r["clean"] and prev is not None and prev["llc_mean"] > 0
                           and abs(r["llc_mean"] - prev["llc_mean"]) <= AGREE * prev["llc_mean"])


def recommend(rows: list[dict], default_nbeta: float) -> dict:
    """The recommended setting and the reason, in words (see the module's rule)."""
    stable = [r for r in rows if r["stable"]]
    clean = [r for r in rows if r["clean"]]
    if stable:
        best = max(stable, key=lambda r: (r["epsilon"], -abs(np.log(r["nbeta"] / max(default_nbeta, 1e-12)))))
        why = (f"its traces are flat, without spikes or diverged chains, and its λ̂ = {best['llc_mean']:.3g} agrees "
               f"within {AGREE:.0%} with the next smaller step at the same nβ; it is the largest such step (the "
               "fastest mixing)")
    elif clean:
        best = min(clean, key=lambda r: r["epsilon"])
        why = ("no step size gave an estimate that a smaller one confirms; this is the smallest clean one: lengthen "
               "the chains (--draws) or widen the sweep before trusting it")
    else:
        worst = rows[0]["warnings"] if rows else "no settings"
        return {"epsilon": None, "nbeta": None, "llc_mean": None,
                "why": f"no setting was clean (e.g. {worst}): try smaller epsilons or a larger gamma"}
    return {"epsilon": best["epsilon"], "nbeta": best["nbeta"], "llc_mean": best["llc_mean"], "why": why}


def calibration_figure(nbetas, trace_columns=()) -> FigureSpec:
    labels = tuple((c, c.replace("eps", "ε = ").replace("_nbeta", ", nβ = ")) for c in trace_columns)
    return FigureSpec("llc_calibration", panels=(
        Panel(table="traces", x="draw", xlabel="draw (after burn-in)", ylabel="loss − L_n(w*)", labels=labels,
              title="mean SGLD loss trace per setting", max_lines=50, logy=False),
        Panel(x="epsilon", columns=tuple(f"llc_nbeta{b:g}" for b in nbetas),
              bands=tuple((f"llc_nbeta{b:g}", f"std_nbeta{b:g}") for b in nbetas),
              labels=tuple((f"llc_nbeta{b:g}", f"nβ = {b:g}") for b in nbetas),
              xlabel="step size ε", ylabel="λ̂", logx=True, logy=False, title="λ̂ against ε")),
        width="two", height=3.0)


def write_outputs(out: Path, rows: list[dict], traces: dict, rec: dict) -> None:
    from grokscope.report.figures import draw_figure, figure_data, save_figure

    out.mkdir(parents=True, exist_ok=True)
    cols = ("epsilon", "nbeta", "llc_mean", "llc_std", "warnings", "clean", "stable")
    table = {c: np.array([r[c] for r in rows], dtype=object if c == "warnings" else np.float64) for c in cols}
    write_table(out / "calibration.csv", table)
    n = max((len(v) for v in traces.values()), default=0)
    trace_table = {"draw": np.arange(n, dtype=np.int64), **traces}
    write_table(out / "traces.csv", trace_table)
    atomic_write_json(out / "recommendation.json", rec)
    epsilons = sorted({r["epsilon"] for r in rows})
    nbetas = sorted({r["nbeta"] for r in rows})
    by_eps = {"epsilon": np.array(epsilons)}
    for b in nbetas:
        for key, col in (("llc_mean", "llc"), ("llc_std", "std")):
            by_eps[f"{col}_nbeta{b:g}"] = np.array([next(r[key] for r in rows if r["epsilon"] == e and r["nbeta"] == b)
                                                    for e in epsilons], dtype=np.float64)
    spec = calibration_figure(nbetas, tuple(traces))
    tables = {"traces": {"step": trace_table["draw"], **trace_table}}
    by_eps = {"step": np.arange(len(epsilons)), **by_eps}
    save_figure(draw_figure(spec, by_eps, None, tables), out / "figures" / spec.name, figure_data(spec, by_eps, tables))


__all__ = ["EPSILONS", "NBETAS", "calibrate", "mark_stable", "recommend"]

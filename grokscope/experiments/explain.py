"""`grokscope explain RUN`: each seed paper's account of why a run grokked, tested by intervention.

A paper's mechanism predicts what an intervention does to the delay between memorization and
generalization. Each intervention is a branch of RUN (`training.branch`) forked at the last
checkpoint before its memorization step with one thing changed, and is compared with a *control*
branch forked at the same step with nothing changed (a checkpoint holds the weights only, so a
branch restarts the optimizer and is never compared with RUN itself):

    analyses/<run>/explain/branches/control/        the control
    analyses/<run>/explain/branches/<mechanism>/    one branch per intervention
    analyses/<run>/explain/mechanisms.csv           mechanism, source, intervention, prediction,
                                                    control, measured, verdict, figure
    analyses/<run>/explain/<mechanism>.{png,pdf,svg,csv}  the branch's test accuracy over the control's

One mechanism needs no branch: Nanda et al.'s circuit, tested by the key-frequency ablations the
`progress` probe computes on the final checkpoint (keep only the key frequencies of a + b in the
logits, or remove them).

The verdict rule (docs/explain.md): with the control's delay D_c (its generalization step minus
the fork step) and the branch's D_i, a mechanism predicting a *slower* generalization is
supported when the branch does not generalize within the budget or D_i >= 2 D_c, contradicted when
D_i <= 1.25 D_c, inconclusive between; one predicting a *faster* one is supported when
D_i <= D_c / 2, contradicted when D_i >= D_c / 1.25 or never. A control that does not generalize
makes every verdict inconclusive. Branches already trained are kept, so a killed explain resumes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grokscope.analysis.engine import default_out
from grokscope.console import format_step
from grokscope.errors import UsageError
from grokscope.measures.transitions import transition_steps
from grokscope.store import Run, load_run
from grokscope.tables import Table, write_table

GROKKING_RATIO = 2.0     # generalized at >= 2x the memorization step: a delay worth explaining
SLOWER, FASTER = "slower", "faster"
COLUMNS = ("mechanism", "source", "intervention", "prediction", "control", "measured", "verdict", "figure")


@dataclass(frozen=True)
class Mechanism:
    """One paper's account, as an intervention on a branch: `why_not(run)` says why it does not
    apply (None: it does), `overrides(run, fork_step)` the branch's --set values, `expect` whether
    the mechanism predicts a slower or a faster generalization than the control's."""

    name: str
    source: str
    intervention: str
    prediction: str
    expect: str
    why_not: Callable[[Run], str | None]
    overrides: Callable[[Run, int, Run], list[str]]   # (the run, the fork step, the control)
    # what the account presumes of the control, checked once it is trained (None: it holds)
    premise: Callable[[Run, int], str | None] = lambda control, fork: None


def _norm_at(run: Run, step: int) -> float:
    state = run.state_dict(step)
    return math.sqrt(sum(float((v.double() ** 2).sum()) for v in state.values() if v.is_floating_point()))


def _no_weight_decay(run: Run) -> str | None:
    if run.config is None:
        return "the run has no stored config"
    if run.config.optim.weight_decay == 0:
        return "the run has no weight decay to remove"
    return None


def _norm_falls(control: Run, fork: int) -> str | None:
    """Omnigrok's account of a delay: weight decay walks the norm down into the good band, so the
    control's weight norm falls between the fork and its generalization."""
    m = control.metrics
    g = _generalized(control)
    if g is None or "weight_norm" not in m:
        return None
    steps, norm = np.asarray(m["step"]), np.asarray(m["weight_norm"], dtype=float)
    start, end = float(norm[np.searchsorted(steps, fork)]), float(norm[np.searchsorted(steps, g)])
    if end < start:
        return None
    return (f"the control's weight norm rose from {start:.3g} to {end:.3g} between the fork and its "
            "generalization, where Omnigrok's account has it fall")


def _norm_free(run: Run) -> str | None:
    if run.config is None:
        return "the run has no stored config"
    if run.config.train.fixed_norm is not None:
        return "the run already holds its weight norm fixed"
    return None


MECHANISMS = (
    Mechanism("weight_decay", "Nanda et al. 2023; Exploring Grokking (arXiv 2412.10898)",
              "weight decay removed at the memorization step",
              "no generalization within the budget, or at least twice as late as the control", SLOWER,
              _no_weight_decay, lambda run, step, control: ["optim.weight_decay=0", "optim.embed_weight_decay=0"]),
    Mechanism("norm_held", "Liu, Michaud & Tegmark 2023 (Omnigrok)",
              "the global weight norm held at its memorization-step value, without weight decay",
              "no generalization within the budget, or at least twice as late as the control (the norm "
              "cannot reach the landscape's good band)", SLOWER, _norm_free,
              lambda run, step, control: ["optim.weight_decay=0", "optim.embed_weight_decay=0",
                                          f"train.fixed_norm={_norm_at(run, step):.6g}",
                                          "train.fixed_norm_absolute=true"], _norm_falls),
    Mechanism("norm_at_end", "Liu, Michaud & Tegmark 2023 (Omnigrok)",
              "the global weight norm held at the control's final value (where it generalized), from the "
              "memorization step, without weight decay",
              "generalization at least twice as early as the control's (no walk to the good band left)", FASTER,
              _norm_free,
              lambda run, step, control: ["optim.weight_decay=0", "optim.embed_weight_decay=0",
                                          f"train.fixed_norm={_norm_at(control, control.steps[-1]):.6g}",
                                          "train.fixed_norm_absolute=true"], _norm_falls),
)


CIRCUIT_NAT = 1.0   # the restricted loss below this, the excluded loss at least this above the train loss


@dataclass(frozen=True)
class Ablation:
    """A mechanism tested on the run's own final checkpoint, without training: Nanda et al.'s
    key-frequency ablations (restricted and excluded loss, the `progress` probe's)."""

    name: str = "circuit"
    source: str = "Nanda et al. 2023"
    intervention: str = ("the final checkpoint's logits with only the key frequencies of a + b kept (restricted "
                         "loss, all pairs), and with them removed (excluded loss, training pairs)")
    prediction: str = (f"keeping only the key frequencies leaves the loss below {CIRCUIT_NAT:g} nat, removing them "
                       f"raises the train loss by at least {CIRCUIT_NAT:g} nat: the generalizing circuit carries "
                       "the answer")


ABLATIONS = (Ablation(),)


def circuit_verdict(restricted: float, excluded: float, train_loss: float) -> str:
    """Supported when both ablations go as the circuit predicts, contradicted when neither does."""
    kept, needed = restricted < CIRCUIT_NAT, excluded - train_loss >= CIRCUIT_NAT
    return "supported" if kept and needed else "contradicted" if not (kept or needed) else "inconclusive"


def _circuit_row(run: Run, out: Path, m: Ablation) -> dict[str, str]:
    from grokscope.analysis import analyze
    from grokscope.probes.base import resolve_probe

    applies = resolve_probe("progress")[0]().applies_to(run)
    if applies is not True:
        return _row(m, "-", "-", f"not applicable: {applies}", "")
    last = run.steps[-1]
    tables = analyze(run, ["progress"], out=out / "circuit", steps=[last], progress=False, report=False)
    t = {k: v[-1] for k, v in tables["progress"].items()}
    restricted, excluded, train_loss = (float(t[c]) for c in ("restricted_loss", "excluded_loss", "train_loss"))
    control = (f"the final checkpoint (step {format_step(last)}) unablated: train loss {train_loss:.3g}, "
               f"test loss {float(t['test_loss']):.3g}")
    measured = (f"key frequencies {str(t['key_frequencies']).replace(' ', ', ')}: restricted loss {restricted:.3g}, "
                f"excluded loss {excluded:.3g}")
    return _row(m, control, measured, circuit_verdict(restricted, excluded, train_loss), "")


def verdict(expect: str, control_delay: int | None, delay: int | None) -> str:
    """The rule in the module docstring; `delay` None: the branch did not generalize in its budget."""
    if control_delay is None:
        return "inconclusive"
    control_delay = max(control_delay, 1)
    if expect == SLOWER:
        if delay is None or delay >= 2 * control_delay:
            return "supported"
        return "contradicted" if delay <= 1.25 * control_delay else "inconclusive"
    if delay is not None and delay <= control_delay / 2:
        return "supported"
    return "contradicted" if delay is None or delay >= control_delay / 1.25 else "inconclusive"


def _generalized(run: Run) -> int | None:
    return transition_steps(run.metrics)[1]


def _delay(run: Run, fork: int) -> int | None:
    g = _generalized(run)
    return None if g is None else g - fork


def explain(run: Run | str | os.PathLike, *, out: str | os.PathLike | None = None, only: list[str] | None = None,
            budget: float = 3.0, progress: bool = True, device: str = "cpu") -> Table:
    """Run the interventions that apply to `run` and write mechanisms.csv; returns its table."""
    from grokscope.training import branch

    run = run if isinstance(run, Run) else load_run(run)
    out = Path(out) if out is not None else default_out(run) / "explain"
    names = [m.name for m in MECHANISMS] + [a.name for a in ABLATIONS]
    for name in only or ():
        if name not in names:
            raise UsageError(f"unknown mechanism {name!r} in --only; choose from {', '.join(names)}")
    if budget < 1:
        raise UsageError(f"--budget must be at least 1 (a multiple of the control's delay), got {budget:g}")
    chosen = [m for m in MECHANISMS if only is None or m.name in only]
    ablations = [a for a in ABLATIONS if only is None or a.name in only]
    memorized, generalized = transition_steps(run.metrics)
    nothing = _nothing_to_explain(memorized, generalized)
    if nothing:
        return _write(out, [_row(m, "-", "-", f"nothing to explain: {nothing}", "") for m in (*chosen, *ablations)])
    rows = [_circuit_row(run, out, a) for a in ablations]
    if not chosen:
        return _write(out, rows)
    fork = max([s for s in run.steps if s <= memorized] or [run.steps[0]])
    steps = run.config.train.steps
    control = branch(run.path, fork, out / "branches" / "control",
                     [f"train.stop_after={max(10, (generalized - fork) // 4)}"], progress=progress, device=device)
    control_delay = _delay(control, fork)
    horizon = fork + int(math.ceil(budget * (control_delay if control_delay is not None else steps - fork)))
    control_text = (f"forked at step {format_step(fork)}; test accuracy 99% {format_step(control_delay)} steps later"
                    if control_delay is not None else f"forked at step {format_step(fork)}; did not generalize")
    for m in chosen:
        reason = m.why_not(run) or m.premise(control, fork)
        if reason is not None:
            rows.append(_row(m, control_text, "-", f"not applicable: {reason}", ""))
            continue
        b = branch(run.path, fork, out / "branches" / m.name,
                   [*m.overrides(run, fork, control), f"train.steps={max(horizon, fork + 1)}"], progress=progress,
                   device=device)
        delay = _delay(b, fork)
        measured = (f"test accuracy 99% {format_step(delay)} steps after the fork "
                    f"({delay / max(control_delay, 1):.2f}x the control's)" if delay is not None and control_delay
                    else f"no 99% test accuracy within {format_step(horizon - fork)} steps ({budget:g}x the control's delay)"
                    if delay is None else f"test accuracy 99% {format_step(delay)} steps after the fork")
        figure = _figure(out, m.name, control, b)
        rows.append(_row(m, control_text, measured, verdict(m.expect, control_delay, delay), figure))
    order = names.index
    return _write(out, sorted(rows, key=lambda r: order(r["mechanism"])))


def _nothing_to_explain(memorized: int | None, generalized: int | None) -> str | None:
    if memorized is None:
        return "the run never fit its training set"
    if generalized is None:
        return "the run never generalized (no delay to explain; the report says what it reached)"
    if generalized < GROKKING_RATIO * max(memorized, 1):
        return (f"the run generalized at step {format_step(generalized)}, within {GROKKING_RATIO:g}x its "
                f"memorization step ({format_step(memorized)}): no delay")
    return None


def _row(m: Mechanism | Ablation, control: str, measured: str, verdict_text: str, figure: str) -> dict[str, str]:
    return {"mechanism": m.name, "source": m.source, "intervention": m.intervention, "prediction": m.prediction,
            "control": control, "measured": measured, "verdict": verdict_text, "figure": figure}


def _write(out: Path, rows: list[dict[str, str]]) -> Table:
    out.mkdir(parents=True, exist_ok=True)
    table = {c: np.array([r[c] for r in rows], dtype=object) for c in COLUMNS}
    write_table(out / "mechanisms.csv", table)
    return table


def _figure(out: Path, name: str, control: Run, branch_run: Run) -> str:
    from grokscope.report.explain import draw_branch_figure

    return draw_branch_figure(out / name, name, control.metrics, branch_run.metrics)

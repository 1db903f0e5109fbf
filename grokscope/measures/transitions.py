"""When a run memorized, when it generalized, and its phases: pure functions of metric columns.

Every part of grokscope that dates a transition calls these (the trainer's summary line and
run.json, `grokscope info`, the `phases` probe, the report's narrative, `compare`, sweeps' phase
diagrams), so they agree by construction.

- `transition_steps`: memorization and generalization steps, the 99% rule (accuracy >= 0.99 on
  the train, then the test split; for regression, the loss falling to 10% of its first value).
- `classify_phase`: Liu et al. 2022's four phases of a whole run (comprehension, grokking,
  memorization, confusion) from the first steps at which train and test accuracy pass 0.9.
- `locate_phases`: Nanda et al. 2023's three phases (memorization, circuit formation, cleanup)
  as ordered, disjoint intervals consistent with the transition steps (see its docstring).
- `half_change_step` / `change_span`: when any quantity covered half (or 10% and 90%) of its
  change from first to last value; the report uses them to say what moved before the test loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MEMORIZED = 0.99            # train accuracy that counts as memorized
GENERALIZED = 0.99          # test accuracy that counts as generalized
LOSS_FRACTION = 0.1         # regression: the loss at 10% of its first value
TOLERANCE = 1e-6            # accuracies are ratios of counts: 0.9 stored in float32 (0.89999998) still counts

# Nanda et al.'s phase boundaries on the test loss, in nats for cross-entropy runs
CIRCUIT_END_LOSS = 1.0
CLEANUP_END_LOSS = 0.01
# ... and as fractions of the peak test loss for classifiers trained with another loss (MSE)
CIRCUIT_END_FRACTION = 0.1
CLEANUP_END_FRACTION = 0.001

LIU_PHASES = ("comprehension", "grokking", "memorization", "confusion")
SWEEP_PHASES = (*LIU_PHASES, "diverged")  # a sweep cell whose runs diverged has no phase of Liu et al.'s

Columns = Mapping[str, np.ndarray]


def first_step_at_least(steps, values, threshold: float) -> int | None:
    """The first step whose value is >= threshold (NaN never is), or None."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    hits = np.flatnonzero(values >= threshold - TOLERANCE)
    return int(np.asarray(steps)[hits[0]]) if hits.size else None


def first_step_below(steps, values, threshold: float, after: int | None = None) -> int | None:
    """The first step (at or after `after`) whose value is < threshold, or None."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    ok = values < threshold
    if after is not None:
        ok &= steps >= after
    hits = np.flatnonzero(ok)
    return int(steps[hits[0]]) if hits.size else None


def is_regression(metrics: Columns) -> bool:
    """True when no accuracy was logged (real-valued labels)."""
    return not np.isfinite(np.asarray(metrics["train_acc"], dtype=np.float64)).any()


def loss_rule(metrics: Columns) -> bool:
    """True when the transitions are dated by the losses: no accuracy (regression), or accuracy
    at one step only (an imported run whose logs kept the losses and whose last checkpoint was
    re-measured)."""
    return int(np.isfinite(np.asarray(metrics["train_acc"], dtype=np.float64)).sum()) < 2


def transition_rules(regression: bool) -> tuple[str, str]:
    """The memorization and generalization rules, in words."""
    if regression:
        return (f"train loss <= {LOSS_FRACTION:g} x its initial value",
                f"test loss <= {LOSS_FRACTION:g} x its initial value")
    return f"train acc >= {MEMORIZED:.0%}", f"test acc >= {GENERALIZED:.0%}"


def transition_steps(metrics: Columns) -> tuple[int | None, int | None]:
    """(memorization step, generalization step) of a metrics table (columns `step`,
    `train_acc`, `test_acc`, `train_loss`, `test_loss`): accuracy >= 99% for classifiers; for
    regression (accuracy all NaN, or logged at one step only: `loss_rule`) the loss falling to
    10% of its first finite value."""
    steps = np.asarray(metrics["step"])
    if not len(steps):
        return None, None
    out = []
    by_loss = loss_rule(metrics)
    for split, threshold in (("train", MEMORIZED), ("test", GENERALIZED)):
        acc = np.asarray(metrics[f"{split}_acc"], dtype=np.float64)
        if not by_loss:
            out.append(first_step_at_least(steps, acc, threshold))
            continue
        loss = np.asarray(metrics[f"{split}_loss"], dtype=np.float64)
        finite = np.isfinite(loss)
        out.append(first_step_below(steps, loss, LOSS_FRACTION * loss[finite][0] + TOLERANCE)
                   if finite.any() else None)
    return out[0], out[1]


def divergence_step(metrics: Columns) -> int | None:
    """The first step whose train loss or weight norm is not finite (the run diverged), or None.
    A weight norm that was never recorded (NaN from the start, as in imported runs) is not a
    divergence; one that becomes infinite, or NaN after finite values, is."""
    bad = ~np.isfinite(np.asarray(metrics["train_loss"], dtype=np.float64))
    if "weight_norm" in metrics:
        w = np.asarray(metrics["weight_norm"], dtype=np.float64)
        seen = np.cumsum(np.isfinite(w)) > 0
        bad |= np.isinf(w) | (np.isnan(w) & seen)
    hits = np.flatnonzero(bad)
    return int(np.asarray(metrics["step"])[hits[0]]) if hits.size else None


def finite_prefix(metrics: Columns) -> tuple[dict[str, np.ndarray], int | None]:
    """The rows before the run diverged (all of them when it did not), and the divergence step."""
    step = divergence_step(metrics)
    if step is None:
        return dict(metrics), None
    keep = np.asarray(metrics["step"]) < step
    return {k: np.asarray(v)[keep] for k, v in metrics.items()}, step


def classify_phase(steps, train_acc, test_acc, *, threshold: float = 0.9,
                   lag: int = 1000) -> tuple[str, int | None, int | None]:
    """(phase, train step, test step) of one run (Liu et al. 2022, their criteria): the first
    steps at which train and test accuracy reach `threshold`; comprehension when the test step
    lags the train step by at most `lag`, grokking when by more, memorization when only train
    accuracy got there, confusion when train accuracy never did."""
    t_train = first_step_at_least(steps, train_acc, threshold)
    t_test = first_step_at_least(steps, test_acc, threshold)
    return phase_of_steps(t_train, t_test, lag=lag), t_train, t_test


def phase_of_steps(t_train: int | None, t_test: int | None, *, lag: int = 1000) -> str:
    """Liu et al. 2022's phase from the steps at which train and test accuracy reached the
    threshold (None: never): confusion without the train step, memorization with it alone,
    grokking when test lags train by more than `lag`, else comprehension. The same rule reads a
    published grid's steps and a trained run's."""
    if t_train is None:
        return "confusion"
    if t_test is None:
        return "memorization"
    return "grokking" if t_test - t_train > lag else "comprehension"


def locate_phases(metrics: Columns, *, cross_entropy: bool = True,
                  restricted: Columns | None = None) -> dict[str, Any]:
    """Nanda et al. 2023's three phases as ordered, disjoint intervals [start, end].

    With M the memorization step and G the generalization step (`transition_steps`):
    - memorization: from the first logged step to the test-loss peak P, the largest test loss
      between M and G (at M when G comes first): P >= M;
    - circuit formation: from P until the test loss first falls below 1 nat (cross-entropy; for
      other losses, below 10% of the peak), and no later than G;
    - cleanup: from there until the test loss falls below 0.01 nat (0.1% of the peak), and no
      earlier than G; the last logged step when it never does.
    Boundaries are clamped to be non-decreasing, so the phases never overlap: a run that
    generalized as soon as it memorized (G <= P) has no circuit-formation phase. The paper's
    mainline reads 0-1.4k, 1.4k-9.4k, 9.4k-13k. A run that never memorized has no phases; one
    that never generalized has memorization, and the later phases only as far as its test loss
    falls. Intervals of zero length are left out. `restricted`: the `progress` table, for the
    step the restricted loss first fell below 1.
    """
    metrics, diverged = finite_prefix(metrics)
    steps = np.asarray(metrics["step"])
    test_loss = np.asarray(metrics["test_loss"], dtype=np.float64)
    mem, gen = transition_steps(metrics)
    out: dict[str, Any] = {
        "memorization_step": mem, "generalization_step": gen,
        "delay": gen - mem if mem is not None and gen is not None else None,
        "thresholds": {"train_acc": MEMORIZED, "test_acc": GENERALIZED},
        "phases": [],
    }
    if diverged is not None:
        out["diverged_step"] = diverged
    if restricted is not None and "restricted_loss" in restricted:
        out["restricted_loss_below_1_step"] = first_step_below(restricted["step"],
                                                               restricted["restricted_loss"], 1.0)
    finite = np.isfinite(test_loss)
    if not finite.any():
        return out
    if is_regression(metrics):
        out["note"] = "regression run: Nanda et al.'s phases are defined for classification; none located"
        return out
    if mem is None:
        out["note"] = "train accuracy never reached 99%: no phases"
        return out
    s, loss = steps[finite], test_loss[finite]
    window = (s >= mem) & (s <= max(mem, gen if gen is not None else int(s[-1])))
    if not window.any():
        out["note"] = "no test loss logged after memorization: no phases"
        return out
    peak = int(s[window][np.argmax(loss[window])])
    peak_loss = float(loss[s == peak][0])
    if cross_entropy:
        circuit_level, cleanup_level = CIRCUIT_END_LOSS, CLEANUP_END_LOSS
        out["thresholds"].update(circuit_end_test_loss=circuit_level, cleanup_end_test_loss=cleanup_level)
    else:
        circuit_level, cleanup_level = CIRCUIT_END_FRACTION * peak_loss, CLEANUP_END_FRACTION * peak_loss
        out["thresholds"].update(circuit_end_test_loss_fraction_of_peak=CIRCUIT_END_FRACTION,
                                 cleanup_end_test_loss_fraction_of_peak=CLEANUP_END_FRACTION)
    last = int(steps[-1])
    out["test_loss_peak_step"] = peak
    out["test_loss_below_1_step"] = first_step_below(s, loss, 1.0, after=peak) if cross_entropy else None
    circuit_end = first_step_below(s, loss, circuit_level, after=peak)
    if gen is not None:
        circuit_end = gen if circuit_end is None else min(circuit_end, gen)
    bounds = [("memorization", int(steps[0]), peak)]
    if circuit_end is not None:
        circuit_end = max(circuit_end, peak)
        cleanup_end = first_step_below(s, loss, cleanup_level, after=circuit_end)
        cleanup_end = max(last if cleanup_end is None else cleanup_end, gen or 0, circuit_end)
        bounds += [("circuit formation", peak, circuit_end), ("cleanup", circuit_end, cleanup_end)]
        if gen is not None and gen <= peak:
            out["note"] = "generalized by the end of memorization (no delay): no circuit-formation phase"
    elif last > peak:
        out["note"] = "the test loss never fell to the circuit-formation level: later phases not located"
    out["phases"] = [{"name": n, "start": a, "end": b} for n, a, b in bounds if b > a]
    return out


def half_change_step(steps, values, min_change: float = 0.05) -> int | None:
    """The first step at which a quantity has covered half of its change from its first to its
    last finite value; None when it changed by less than `min_change` of its largest |value|."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    if ok.sum() < 3:
        return None
    s, v = steps[ok], values[ok]
    start, end = v[0], v[-1]
    scale = max(np.abs(v).max(), 1e-12)
    if abs(end - start) < min_change * scale:
        return None
    return int(s[np.argmax((v - start) / (end - start) >= 0.5)])


def change_span(steps, values) -> tuple[int | None, int | None]:
    """The steps at which a quantity covered 10% and 90% of its change (None, None if flat)."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    s, v = steps[ok], values[ok]
    if len(v) < 3 or abs(v[-1] - v[0]) < 1e-9:
        return None, None
    frac = (v - v[0]) / (v[-1] - v[0])
    return int(s[np.argmax(frac >= 0.1)]), int(s[np.argmax(frac >= 0.9)])

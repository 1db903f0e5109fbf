"""The report's words: *when* the run memorized and generalized, and *why*, from whichever
probes' tables there are. Pure functions over tables; no file is read here.

Every claim carries its number, the figure it can be seen in and its source paper, and is
written only when the numbers support it: a mechanism that was checked and did not hold goes to
`not_seen` (in plain words), and one that could not be checked goes to `not_judged` with the
probe that would check it. The rules and thresholds are listed in docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grokscope.console import format_step
from grokscope.measures.transitions import (
    LOSS_FRACTION,
    finite_prefix,
    first_step_below,
    half_change_step,
    loss_rule,
    transition_steps,
)

Table = dict[str, np.ndarray]

NANDA = "Nanda et al. 2023"
OMNIGROK = "Liu, Michaud & Tegmark 2023, Omnigrok"
KUMAR = "Kumar et al. 2024"
LAU = "Lau et al. 2023; devinterp"
LIU = "Liu et al. 2022"

GROKKING_RATIO = 2.0       # generalized at >= 2x the memorization step: grokking (a delay, not a lag)
GINI_RISE = 0.1            # Fourier sparsity: the Gini of W_E's Fourier norms rose by at least this
KEY_ENERGY = 0.5           # the key frequencies hold at least half of W_E's energy at the end
EXCLUDED_RISE = 1.0        # excluded loss rose by at least 1 nat from its post-memorization low
ALIGNMENT_RISE = 0.1       # NTK alignment rose by at least 10% of its first value
LAZY_TO_RICH = 0.5         # ... and by 50% or more: "left the lazy regime"
RQI_RISE = 0.1             # RQI rose by at least 0.1
RQI_RHO = 0.5              # Spearman correlation of RQI with test accuracy at least this
NORM_FALL = 0.1            # the weight norm fell by at least 10% before generalizing
MIN_CHECKPOINTS = 3        # a mechanism is dated from at least this many analysed checkpoints
LANDSCAPE_GAIN = 2.0       # the landscape's best test loss at the run's norm fell at least 2x


@dataclass(frozen=True)
class Claim:
    """One sentence with its numbers, the figure it is seen in, and the paper it comes from."""

    text: str
    figure: str = ""
    source: str = ""


@dataclass
class Narrative:
    when: list[Claim] = field(default_factory=list)
    why: list[Claim] = field(default_factory=list)
    not_seen: list[Claim] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)


def _n(v: float, digits: int = 3) -> str:
    """A number for prose: 3 significant digits, thousands separated."""
    v = float(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.2e}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _finite(table: Table, col: str) -> tuple[np.ndarray, np.ndarray]:
    steps, v = np.asarray(table["step"]), np.asarray(table[col], dtype=np.float64)
    ok = np.isfinite(v)
    return steps[ok], v[ok]


def value_at(table: Table, col: str, step: int) -> float:
    """The column's value at the last logged step <= `step` (the first one when none is)."""
    s, v = _finite(table, col)
    if not len(s):
        return float("nan")
    i = np.searchsorted(s, step, side="right") - 1
    return float(v[max(i, 0)])


# --- when -----------------------------------------------------------------------------------------

def when_claims(training: Table | None, phases: dict[str, Any]) -> list[Claim]:
    """Memorization, generalization, the delay, and the phases, in words."""
    if training is None or not len(training["step"]):
        return [Claim("No training metrics were logged, so when the model memorized and generalized "
                      "cannot be judged.")]
    metrics, diverged = finite_prefix(training)
    out = []
    if diverged is not None:
        out.append(Claim(f"The run diverged at step {format_step(diverged)} (its training loss stopped being finite); "
                         "what follows describes the steps before it.", "training"))
    if len(metrics["step"]) < 2:
        s = int(training["step"][0])
        accs = [f"{split} accuracy {_n(training[f'{split}_acc'][0])}" for split in ("train", "test")
                if np.isfinite(training[f"{split}_acc"][0])]
        return out + [Claim(f"The run has metrics at one step only (step {format_step(s)}"
                            + (f": {', '.join(accs)}" if accs else "") + "), so when it memorized and "
                            "generalized cannot be judged.", "training")]
    mem = phases.get("memorization_step", None) if "memorization_step" in phases else None
    gen = phases.get("generalization_step", None) if "generalization_step" in phases else None
    if "memorization_step" not in phases:
        mem, gen = transition_steps(metrics)
    last = int(metrics["step"][-1])
    regression = loss_rule(metrics)
    fit, general = ((f"train loss at {LOSS_FRACTION:.0%} of its first value",
                     f"test loss at {LOSS_FRACTION:.0%} of its first value") if regression
                    else ("train accuracy 99%", "test accuracy 99%"))
    if mem is None:
        if regression:
            s, v = _finite(metrics, "train_loss")
            out.append(Claim(f"The model never fit its training set: train loss went from {_n(v[0])} to "
                             f"{_n(v[-1])} by step {format_step(last)}, never reaching {LOSS_FRACTION:.0%} of its start.",
                             "training"))
        else:
            s, v = _finite(metrics, "train_acc")
            out.append(Claim(f"The model never fit its training set: train accuracy reached at most "
                             f"{v.max():.1%} (step {format_step(s[np.argmax(v)])}) by the last step, {format_step(last)}.",
                             "training"))
        return out
    if gen is None:
        col = "test_loss" if regression else "test_acc"
        s, v = _finite(metrics, col)
        best = (f"its test loss fell at best to {_n(v.min())} from {_n(v[0])}" if regression
                else f"its test accuracy reached at most {v.max():.1%} (step {format_step(s[np.argmax(v)])})")
        out.append(Claim(f"The model memorized its training set at step {format_step(mem)} ({fit}) but did not "
                         f"generalize by the rule ({general}) within the run: {best} by the last step, "
                         f"{format_step(last)}.", "training"))
    elif gen <= mem:
        out.append(Claim(f"The model generalized as it fit, with no delay: {general} at step {format_step(gen)}, "
                         f"{fit} at step {format_step(mem)}. This run does not grok.", "training"))
    else:
        ratio = gen / max(mem, 1)
        what = ("This is grokking." if ratio >= GROKKING_RATIO
                else "A short delay: not grokking in the usual sense.")
        out.append(Claim(f"The model memorized its training set at step {format_step(mem)} ({fit}) and generalized "
                         f"at step {format_step(gen)} ({general}): {format_step(gen - mem)} steps later, {ratio:.1f}x the "
                         f"memorization step. {what}", "training"))
    if regression and gen is not None:
        s, v = _finite(metrics, "test_loss")
        at, end = value_at(metrics, "test_loss", gen), v[-1]
        if end * 10 <= at:
            logv = np.log(np.maximum(v[s >= gen], 1e-300))
            half = int(s[s >= gen][np.argmax(logv <= (logv[0] + logv[-1]) / 2)])
            out.append(Claim(f"The test loss kept falling long after that: {_n(at)} at step {format_step(gen)}, "
                             f"{_n(end)} by the last step ({at / end:,.0f}x lower), half of the fall (on a log "
                             f"scale) by step {format_step(half)}.", "training"))
    ends = {"memorization": " (the test-loss peak)", "circuit formation": "", "cleanup": ""}
    if any(p["name"] == "circuit formation" for p in phases.get("phases", [])):
        parts = [f"{p['name']} until step {format_step(p['end'])}{ends.get(p['name'], '')}" for p in phases["phases"]]
        out.append(Claim("By Nanda et al.'s three phases: " + ", ".join(parts) + ".", "training", NANDA))
    return out


# --- why ------------------------------------------------------------------------------------------

MECHANISMS = {  # probe: (what it judges, how to get it, the tasks it applies to; None: any)
    "fourier": ("Fourier sparsity and key frequencies", "`--probe fourier`", ("modular",)),
    "progress": ("restricted and excluded loss", "`--probe progress`", ("modular",)),
    "landscape": ("the weight norm's place on the L/U landscape",
                  "`grokscope landscape --preset ...`, then `--probe landscape --param landscape.dir=DIR`", None),
    "ntk_alignment": ("NTK-target alignment", "`--probe ntk_alignment`", None),
    "parallelogram": ("representation quality (RQI)", "`--probe parallelogram`", ("toy_add", "modular")),
    "llc": ("the local learning coefficient's peak", "`--probe llc` (`pip install grokscope[llc]`)", None),
}
LLC_FALL = 1.2             # the LLC's peak is at least 1.2x its last value
LLC_RHO = 0.5              # after the peak, Spearman correlation of the LLC with the test loss at least this


def fourier_claims(t: Table, gen: int | None, n: Narrative) -> None:
    if "gini_embed" not in t or gen is None:
        return
    s, g = _finite(t, "gini_embed")
    if len(g) < 3:
        return
    rise, half = g[-1] - g[0], half_change_step(s, g)
    if rise < GINI_RISE:
        n.not_seen.append(Claim(f"The embedding did not become sparse in the Fourier basis (Gini of W_E's "
                                f"Fourier norms {_n(g[0], 2)} → {_n(g[-1], 2)}).", "fourier", NANDA))
        return
    keys = str(t["key_frequencies"][-1]).split() if "key_frequencies" in t else []
    share = _finite(t, "key_energy_share")[1] if "key_energy_share" in t else np.zeros(0)
    key_text = ""
    if keys and len(share) and share[-1] >= KEY_ENERGY:
        key_text = (f"; {len(keys)} key frequencies ({', '.join(keys)}) hold {share[-1]:.0%} of W_E's energy "
                    f"at the end, against {share[0]:.0%} at the start")
    if half is not None and half < gen:
        n.why.append(Claim(f"The embedding became sparse in the Fourier basis before the model generalized: the "
                           f"Gini coefficient of W_E's Fourier norms rose from {_n(g[0], 2)} to {_n(g[-1], 2)}, "
                           f"half of the rise by step {format_step(half)}, {format_step(gen - half)} steps before step "
                           f"{format_step(gen)}{key_text}.", "fourier", NANDA))
    else:
        n.not_seen.append(Claim(f"Fourier sparsity rose only once the model had generalized (half of its rise "
                                f"at step {format_step(half)}, generalization at {format_step(gen)}).", "fourier", NANDA))


def progress_claims(t: Table, mem: int | None, gen: int | None, n: Narrative,
                    phases: dict[str, Any]) -> None:
    if gen is None or not {"restricted_loss", "test_loss"} <= set(t):
        return
    r1 = first_step_below(*_finite(t, "restricted_loss"), 1.0)
    t1 = first_step_below(*_finite(t, "test_loss"), 1.0)
    if phases.get("restricted_loss_below_1_step") is not None:  # the phases probe's (metrics' steps) when there
        r1, t1 = phases["restricted_loss_below_1_step"], phases.get("test_loss_below_1_step")
    if r1 is None:
        s, r = _finite(t, "restricted_loss")
        if len(r):
            low = int(np.argmin(r))
            n.not_seen.append(Claim(f"The restricted loss (the loss with only the key frequencies kept) never fell below "
                                    f"1 nat: its lowest was {_n(r[low])} at step {format_step(s[low])}, so the circuit's "
                                    f"formation cannot be dated from it.", "progress", NANDA))
    elif r1 is not None and (t1 is None or r1 < t1):
        later = f"{format_step(t1 - r1)} steps before the test loss did (step {format_step(t1)})" if t1 is not None \
            else "while the test loss never did"
        n.why.append(Claim(f"The generalizing circuit formed before it showed in the test loss: the restricted "
                           f"loss (the loss with only the key frequencies kept) fell below 1 nat at step "
                           f"{format_step(r1)}, {later}.", "progress", NANDA))
    elif r1 is not None:
        n.not_seen.append(Claim(f"The restricted loss did not fall before the test loss (below 1 nat at step "
                                f"{format_step(r1)}, test loss at step {format_step(t1)}).", "progress", NANDA))
    if "excluded_loss" in t and mem is not None:
        s, e = _finite(t, "excluded_loss")
        after = s >= mem
        if after.sum() >= 2:
            s, e = s[after], e[after]
            lo = int(np.argmin(e))
            hi = lo + int(np.argmax(e[lo:]))
            if e[hi] - e[lo] >= EXCLUDED_RISE:
                n.why.append(Claim(f"The model came to rely on the key frequencies: the excluded loss (the train "
                                   f"loss with them removed) rose from {_n(e[lo])} at step {format_step(s[lo])} to "
                                   f"{_n(e[hi])} at step {format_step(s[hi])}.", "progress", NANDA))
            else:
                n.not_seen.append(Claim(f"The excluded loss did not rise after memorization (at most "
                                        f"{_n(e[hi])} from {_n(e[lo])}).", "progress", NANDA))


def landscape_claims(t: Table, mem: int, gen: int | None, n: Narrative, weight_decay: float | None = None) -> None:
    """Omnigrok: a run generalizes when its weight norm enters the band of norms where the
    landscape's best test loss is low, and its own test loss follows the landscape's. The good
    band: norms where the landscape's best test loss is within LANDSCAPE_GAIN of its lowest
    (`landscape_min_test_loss`); every sentence names the losses it rests on. `weight_decay`: the
    run's (None: not known), so that weight decay is credited only where the run had it."""
    if not {"weight_norm", "landscape_test_loss", "test_loss"} <= set(t):
        return
    if "landscape_min_test_loss" not in t:
        n.not_judged.append("the weight norm's place on the L/U landscape: the `landscape` table predates the landscape's "
                            "lowest test loss (`landscape_min_test_loss`); run `grokscope analyze` again")
        return
    keep = np.asarray(t["step"]) >= mem
    after = {k: np.asarray(v)[keep] for k, v in t.items()}
    s, w = _finite(after, "weight_norm")
    if len(w) < MIN_CHECKPOINTS:
        return
    first, last = int(s[0]), int(s[-1])
    l0, l1 = value_at(after, "landscape_test_loss", first), value_at(after, "landscape_test_loss", last)
    t0, t1 = value_at(after, "test_loss", first), value_at(after, "test_loss", last)
    scale = ""
    if "norm_scale" in t:
        scale = f" ({_n(value_at(after, 'norm_scale', first))} → {_n(value_at(after, 'norm_scale', last))} × w0)"
    fell = w[-1] <= (1 - NORM_FALL) * w[0]
    land_fell, own_fell = l1 * LANDSCAPE_GAIN <= l0, t1 * LANDSCAPE_GAIN <= t0
    lowest = float(np.nanmin(np.asarray(t["landscape_min_test_loss"], dtype=float)))
    band = LANDSCAPE_GAIN * lowest   # the good band: the landscape's best test loss at most this
    in_at_start, in_at_end = l0 <= band, l1 <= band
    band_text = (f"the good band is where the landscape's best test loss is at most {_n(band)} "
                 f"({LANDSCAPE_GAIN:g}x its lowest, {_n(lowest)})")
    rho = spearman(_finite(after, "landscape_test_loss")[1], _finite(after, "test_loss")[1]) \
        if len(_finite(after, "landscape_test_loss")[1]) == len(_finite(after, "test_loss")[1]) else float("nan")
    moved = (f"from the first checkpoint after memorization (step {format_step(first)}) to step {format_step(last)} the "
             f"weight norm went {_n(w[0])} → "
             f"{_n(w[-1])}{scale}, the landscape's best test loss at that norm {_n(l0)} → {_n(l1)}, and the "
             f"run's own test loss {_n(t0)} → {_n(t1)}")
    if fell and land_fell and own_fell and in_at_end and not in_at_start and np.isfinite(rho) and rho >= RQI_RHO:
        mover = ("Weight decay walked the weight norm" if weight_decay else
                 "The weight norm fell, without weight decay," if weight_decay == 0 else "The weight norm fell")
        n.why.append(Claim(f"{mover} into the landscape's good band and the test loss followed: {moved} "
                           f"(Spearman ρ = {rho:.2f} between the two losses over {len(w)} checkpoints; "
                           f"{band_text}).", "landscape", OMNIGROK))
    elif gen is not None and not fell and in_at_start and gen <= last:
        n.why.append(Claim(f"The weight norm started inside the landscape's good band, where its best test loss is "
                           f"already {_n(l0)} ({band_text}), and barely moved: {_n(w[0])} → {_n(w[-1])}{scale}. "
                           f"By Omnigrok's account nothing had to change for the model to generalize.", "landscape", OMNIGROK))
    elif gen is None and not in_at_start and not in_at_end:
        n.why.append(Claim(f"The weight norm stayed outside the landscape's good band: {moved} ({band_text}).",
                           "landscape", OMNIGROK))
    else:
        followed = bool(np.isfinite(rho) and rho >= RQI_RHO)
        unmet = [text for ok, text in (
            (fell, f"the weight norm fell by less than {NORM_FALL:.0%}"),
            (land_fell and own_fell, f"the two test losses did not both fall {LANDSCAPE_GAIN:g}x"),
            (not in_at_start, "the norm started inside the good band"),
            (in_at_end, "the norm had not entered the good band by the last checkpoint"),
            (followed, f"the two losses are not rank-correlated (Spearman ρ below {RQI_RHO:g})")) if not ok]
        lead = "Omnigrok's account held only in part" if followed else "The run's test loss did not follow the L/U landscape"
        n.not_seen.append(Claim(f"{lead} ({'; '.join(unmet)}): {moved}"
                                + (f" (Spearman ρ = {rho:.2f}; {band_text})." if np.isfinite(rho) else f" ({band_text})."),
                                "landscape", OMNIGROK))


def weight_norm_claims(t: Table, gen: int | None, n: Narrative, judged_by_landscape: bool) -> None:
    if "weight_norm" not in t or gen is None or judged_by_landscape:
        return
    s, w = _finite(t, "weight_norm")
    if len(w) < 2:
        return
    w_at = value_at(t, "weight_norm", gen)
    s, w = s[s <= gen], w[s <= gen]
    if len(w) and w_at <= (1 - NORM_FALL) * w.max():
        peak = int(np.argmax(w))
        n.why.append(Claim(f"The weight norm fell from {_n(w[peak])} (step {format_step(s[peak])}) to {_n(w_at)} by the "
                           f"generalization step, as Omnigrok's account of weight decay expects.", "weights", OMNIGROK))


def ntk_claims(t: Table, mem: int | None, gen: int | None, n: Narrative) -> None:
    col = "alignment_train" if "alignment_train" in t else "alignment_test" if "alignment_test" in t else None
    if col is None or gen is None:
        return
    s, a = _finite(t, col)
    if len(a) < 3:
        return
    half = half_change_step(s, a)
    rel = (a[-1] - a[0]) / max(abs(a[0]), 1e-12)
    if rel >= ALIGNMENT_RISE and half is not None and half <= gen:
        when = ("at generalization" if abs(gen - half) <= 0.1 * gen
                else f"before the model had even memorized (step {format_step(mem)}), well before generalization"
                if mem is not None and half < mem else "between memorization and generalization")
        strong = rel >= LAZY_TO_RICH
        n.why.append(Claim(("The network left the lazy regime: the" if strong else "The")
                           + f" alignment of its NTK with the targets rose {'from' if strong else 'modestly, from'} "
                           f"{_n(a[0])} to {_n(a[-1])} ({rel:+.0%}), half of the rise by step {format_step(half)}, "
                           f"{when} (step {format_step(gen)}).", "ntk_alignment", KUMAR))
    elif rel >= ALIGNMENT_RISE and half is None:
        # first to last it rose, but by less than 5% of its largest value: it rose and fell back
        peak = int(np.argmax(a))
        n.not_judged.append(f"the NTK alignment's timing: it went from {_n(a[0])} to {_n(a[-1])} ({rel:+.0%}) but "
                            f"peaked at {_n(a[peak])} (step {format_step(s[peak])}) in between, so its rise has no "
                            "single half-way step")
    elif rel < ALIGNMENT_RISE:
        n.not_seen.append(Claim(f"The NTK's alignment with the targets did not rise ({_n(a[0])} → {_n(a[-1])}): "
                                "the network stayed close to its initial kernel.", "ntk_alignment", KUMAR))
    else:
        n.not_seen.append(Claim(f"The NTK's alignment rose only after generalization (half of its rise at step "
                                f"{format_step(half)}, generalization at {format_step(gen)}).", "ntk_alignment", KUMAR))


def llc_claims(t: Table, training: Table | None, mem: int | None, gen: int, n: Narrative) -> None:
    """devinterp's grokking example: the LLC rises while the model memorizes, peaks near the end of
    memorization, and falls as the test loss falls. Stated only when every estimate's diagnostics
    are clean."""
    if "llc_mean" not in t:
        return
    if "llc_warnings" in t:
        flagged = [(int(s), str(w)) for s, w in zip(t["step"], t["llc_warnings"]) if str(w) not in ("", "nan")]
        if flagged:
            n.not_judged.append(f"the local learning coefficient's peak: the SGLD diagnostics flagged {len(flagged)} of "
                                f"{len(t['step'])} checkpoints (step {flagged[0][0]:,}: {flagged[0][1]}); choose the "
                                "settings with `grokscope llc-calibrate RUN`")
            return
    s, v = _finite(t, "llc_mean")
    if len(v) < MIN_CHECKPOINTS or training is None:
        return
    peak = int(np.argmax(v))
    after_s, after_v = s[peak:], v[peak:]
    test = np.array([value_at(training, "test_loss", int(x)) for x in after_s])
    rho = spearman(after_v, test)
    where = ("near the end of memorization" if mem is not None and 0.5 * mem <= s[peak] <= max(2 * mem, mem + 0.1 * gen)
             else f"at step {format_step(s[peak])}")
    if v[peak] >= LLC_FALL * v[-1] and np.isfinite(rho) and rho >= LLC_RHO and s[peak] < gen:
        n.why.append(Claim(f"The model's effective complexity peaked {where} and fell as it generalized: the local "
                           f"learning coefficient rose from {_n(v[0])} to {_n(v[peak])} at step {format_step(s[peak])}, then "
                           f"fell to {_n(v[-1])}, tracking the test loss (Spearman ρ = {rho:.2f} over the "
                           f"{len(after_v)} checkpoints after the peak).", "llc", LAU))
    else:
        rho_text = "undefined" if not np.isfinite(rho) else f"{rho:.2f}"
        n.not_seen.append(Claim(f"The local learning coefficient did not peak and then fall with the test loss (peak "
                                f"{_n(v[peak])} at step {format_step(s[peak])}, last {_n(v[-1])}; Spearman ρ with the test "
                                f"loss after the peak {rho_text}).", "llc", LAU))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rqi_claims(t: Table, training: Table | None, gen: int | None, n: Narrative) -> None:
    if "rqi" not in t or training is None or "test_acc" not in training:
        return
    s, r = _finite(t, "rqi")
    if len(r) < 3 or not np.isfinite(np.asarray(training["test_acc"], dtype=float)).any():
        return
    acc = np.array([value_at(training, "test_acc", int(step)) for step in s])
    rho = spearman(r, acc)
    if r[-1] - r[0] >= RQI_RISE and np.isfinite(rho) and rho >= RQI_RHO:
        n.why.append(Claim(f"The embedding grew the structure generalization needs: RQI (the share of "
                           f"parallelograms i + j = m + n the embedding closes) rose from {_n(r[0], 2)} to "
                           f"{_n(r[-1], 2)} together with test accuracy ({_n(acc[0], 2)} → {_n(acc[-1], 2)}; "
                           f"Spearman ρ = {rho:.2f} over {len(r)} checkpoints).", "parallelogram", LIU))
    else:
        rho_text = "undefined" if not np.isfinite(rho) else f"{rho:.2f}"
        n.not_seen.append(Claim(f"RQI did not rise with test accuracy (RQI {_n(r[0], 2)} → {_n(r[-1], 2)}, "
                                f"Spearman ρ with test accuracy {rho_text}).", "parallelogram", LIU))


def narrative(tables: dict[str, Table], phases: dict[str, Any], training: Table | None = None,
              probe_status: dict[str, dict[str, Any]] | None = None, task: str | None = None,
              weight_decay: float | None = None) -> Narrative:
    """When and why, from the analysis's tables (probe name -> table), its `phases` result, the
    run's metrics (`training`), each probe's manifest entry (`probe_status`, for what was skipped
    and why), the task's name (to suggest only probes that apply) and the run's weight decay
    (None: not known; weight decay is credited only where the run had it)."""
    n = Narrative(when=when_claims(training, phases or {}))
    phases = phases or {}
    mem, gen = phases.get("memorization_step"), phases.get("generalization_step")
    if "memorization_step" not in phases and training is not None and len(training["step"]):
        mem, gen = transition_steps(finite_prefix(training)[0])
    if mem is None:
        return n  # it never fit: there is no generalization to explain
    if "lu" in tables and "landscape" not in tables:   # an analysis written when the probe was named `lu`
        tables = {("landscape" if k == "lu" else k): v for k, v in tables.items()}
    if "landscape" in tables:
        landscape_claims(tables["landscape"], mem, gen, n, weight_decay)  # also says why a run did not generalize
    if gen is None:
        return n  # nothing generalized: the mechanisms of generalization are not judged
    few = {k for k in MECHANISMS if k in tables and len(tables[k]["step"]) < MIN_CHECKPOINTS}
    for k in sorted(few):
        n.not_judged.append(f"{MECHANISMS[k][0]}: the `{k}` table has {len(tables[k]['step'])} checkpoint(s); "
                            f"dating a change needs at least {MIN_CHECKPOINTS}")
    tables = {k: v for k, v in tables.items() if k not in few}
    if "fourier" in tables:
        fourier_claims(tables["fourier"], gen, n)
    if "progress" in tables:
        progress_claims(tables["progress"], mem, gen, n, phases)
    weights = tables["weights"] if "weights" in tables else training
    if weights is not None:
        weight_norm_claims(weights, gen, n, judged_by_landscape="landscape" in tables)
    if "ntk_alignment" in tables:
        ntk_claims(tables["ntk_alignment"], mem, gen, n)
    if "parallelogram" in tables:
        rqi_claims(tables["parallelogram"], training, gen, n)
    if "llc" in tables:
        llc_claims(tables["llc"], training, mem, gen, n)
    status = probe_status or {}
    for probe, (what, how, tasks) in MECHANISMS.items():
        if probe in tables or probe in few:
            continue
        entry = status.get(probe)
        if entry and entry.get("status") == "skipped":
            n.not_judged.append(f"{what}: the `{probe}` probe was skipped ({entry.get('reason')})")
        elif entry and entry.get("status") == "failed":
            n.not_judged.append(f"{what}: the `{probe}` probe failed ({entry.get('reason')})")
        elif tasks is None or task is None or task in tasks:
            n.not_judged.append(f"{what}: run {how}")
    return n


__all__ = ["Claim", "Narrative", "narrative", "when_claims"]

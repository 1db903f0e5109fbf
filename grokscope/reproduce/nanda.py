"""Nanda, Chan, Lieberum, Smith, Steinhardt 2023, "Progress measures for grokking via mechanistic
interpretability" (ICLR 2023): the mainline run and the data-fraction effect."""

from __future__ import annotations

import numpy as np

from grokscope.measures.transitions import locate_phases
from grokscope.reproduce import (
    Check,
    Data,
    Part,
    Reproduction,
    Series,
    paper_figure,
    paper_panel,
    first_step,
    fmt_step,
    thin,
)
from grokscope.specs import FigureSpec

SOURCE = "Nanda et al. 2023 (published runs; shared/REFERENCES.md)"
STEPS = {"quick": 400, "full": 20000}


def parts(scale: str) -> list[Part]:
    if scale == "quick":
        return [Part("mainline", "nanda", overrides=("train.steps=400",), checkpoints=5)]
    return [Part("mainline", "nanda", overrides=(f"train.steps={STEPS[scale]}",), probes="fourier,progress",
                 count=60),
            Part("fraction", "nanda", grid=("task.frac_train=0.5",), overrides=("train.steps=3000",), checkpoints=10)]


def _below(m, column: str, value: float) -> int | None:
    return first_step(m, column, at_most=value)


def checks(scale: str, data: Data) -> list[Check]:
    run = data["mainline"][0]
    m = run.metrics
    memorized = _below(m, "train_loss", 1e-2)
    out = [Check("train loss below 0.01 (step)", "about 270", fmt_step(memorized),
                 memorized is not None and 135 <= memorized <= 540, "within 2x", SOURCE)]
    if scale == "quick":
        return out
    step, test = np.asarray(m["step"]), np.asarray(m["test_loss"], dtype=float)
    early = step <= 5000
    peak_i = int(np.argmax(np.where(early, test, -np.inf)))
    test1, test001 = _below(m, "test_loss", 1.0), _below(m, "test_loss", 0.01)
    fall = None if test1 is None or test001 is None else test001 - test1
    out += [
        Check("test loss peak (value, step)", "25-35 near step 1,400", f"{test[peak_i]:.1f} at step {int(step[peak_i]):,}",
              bool(12 <= test[peak_i] <= 70 and 700 <= step[peak_i] <= 2800), "value within 2x of 25-35, step within 2x",
              SOURCE),
        Check("test loss below 1 (step)", "7,600 (fraction sweep); 13,800 (TransformerLens demo, another seed)",
              fmt_step(test1), test1 is not None and 3800 <= test1 <= 27600, "within 2x of 7,600-13,800", SOURCE,
              "the paper's code never seeds torch: the step varies from run to run"),
        Check("test loss from 1 to 0.01 (steps)", "about 700", fmt_step(fall),
              fall is not None and 233 <= fall <= 2100, "within 3x", SOURCE),
    ]
    fourier, progress = run.tables.get("fourier"), run.tables.get("progress")
    if fourier is not None:
        keys = str(fourier["key_frequencies"][-1]).split()
        out.append(Check("key frequencies of the final model", "5 in the mainline ({14, 35, 41, 42, 52}); 3-4 in "
                         "other seeds", f"{len(keys)}: {{{', '.join(keys)}}}", 3 <= len(keys) <= 6, "3 to 6", SOURCE))
        g_e, g_l = np.asarray(fourier["gini_embed"], dtype=float), np.asarray(fourier["gini_neuron_logit"], dtype=float)
        out.append(Check("Gini of W_E and of W_L in the Fourier basis (start -> end)", "rise (sparse in frequency)",
                         f"W_E {g_e[0]:.2f} -> {g_e[-1]:.2f}, W_L {g_l[0]:.2f} -> {g_l[-1]:.2f}",
                         bool(g_e[-1] > 1.5 * g_e[0] and g_l[-1] > 1.5 * g_l[0]), "each ends above 1.5x its start",
                         "Nanda et al. 2023, Fig. 7"))
    if progress is not None:
        restricted1 = first_step(progress, "restricted_loss", at_most=1.0)
        ps, exc = np.asarray(progress["step"]), np.asarray(progress["excluded_loss"], dtype=float)
        mem_end = ps <= 1400
        before_gen = ps <= (test1 or ps[-1])
        rises = bool(exc[before_gen].max() > 2 * exc[mem_end][-1]) if mem_end.any() else False
        at = f"{int(ps[mem_end][-1]):,}" if mem_end.any() else "-"   # the last checkpoint up to the paper's 1.4k
        out += [
            Check("restricted loss falls below 1 before the test loss", "earlier (during circuit formation)",
                  f"restricted at {fmt_step(restricted1)}, test at {fmt_step(test1)}",
                  restricted1 is not None and test1 is not None and restricted1 < test1, "strictly earlier",
                  "Nanda et al. 2023, Fig. 7 and sec. 5.1"),
            Check("excluded loss rises during circuit formation", "rises while the train loss stays low",
                  f"{exc[mem_end][-1]:.3g} at step {at} -> peak {exc[before_gen].max():.3g}" if mem_end.any() else "-",
                  rises, f"peak before generalization above 2x its value at step {at} (the last checkpoint up to "
                         "the paper's 1.4k)",
                  "Nanda et al. 2023, Fig. 7 and sec. 5.1"),
        ]
        phases = locate_phases(m, restricted=progress)
        bounds = {p["name"]: (p["start"], p["end"]) for p in phases.get("phases", [])}
        out.append(Check("phases: memorization / circuit formation / cleanup start", "0 / 1.4k / 9.4k",
                         " / ".join(fmt_step(bounds.get(k, (None,))[0]) for k in
                                    ("memorization", "circuit formation", "cleanup")),
                         None, "not judged here: by rule the cleanup starts where the test loss falls below 1, "
                         "which the row 'test loss below 1 (step)' judges", "Nanda et al. 2023, sec. 5.2"))
    norm = np.asarray(m["weight_norm"], dtype=float)
    out.append(Check("weight norm after the memorization peak", "falls through circuit formation and cleanup",
                     f"peak {norm.max():.1f} -> {norm[-1]:.1f} ({norm[-1] / norm.max():.2f}x)",
                     bool(norm[-1] < 0.8 * norm.max()), "ends below 0.8x its peak", "Nanda et al. 2023, Fig. 7"))
    half = data.get("fraction")
    if half:
        h1 = _below(half[0].metrics, "test_loss", 1.0)
        out.append(Check("data fraction 0.5: test loss below 1 (step)", "740 (against 7,600 at 0.3)", fmt_step(h1),
                         h1 is not None and 370 <= h1 <= 1480 and (test1 is None or h1 * 3 < test1),
                         "within 2x, and over 3x earlier than at 0.3", SOURCE))
    return out


def _log_curve(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (x > 0) & np.isfinite(y) & (y > 0)
    return thin(x[keep], y[keep], log=False)


def figure(scale: str, data: Data) -> FigureSpec:
    run = data["mainline"][0]
    m = run.metrics
    losses = [Series(s, *_log_curve(m["step"], m[f"{s}_loss"]), split=s, style="-") for s in ("train", "test")]
    progress, fourier = run.tables.get("progress"), run.tables.get("fourier")
    vlines = ()
    if progress is not None:
        losses += [Series(label, *_log_curve(progress["step"], progress[c]), style="o-", colour=i)
                   for i, (c, label) in enumerate((("restricted_loss", "restricted"), ("excluded_loss", "excluded")))]
        phases = locate_phases(m, restricted=progress)
        vlines = tuple((f"{p['name']} starts", float(p["start"])) for p in phases.get("phases", [])[1:])
    panels = [paper_panel("(a) losses", tuple(losses), ylabel="cross-entropy", logy=True, vlines=vlines)]
    if fourier is not None:
        panels.append(paper_panel("(b) Gini in the Fourier basis", tuple(
            Series(label, *thin(fourier["step"], fourier[c]), style="o-", colour=2 + i)
            for i, (c, label) in enumerate((("gini_embed", "W_E"), ("gini_neuron_logit", "W_L")))),
            ylabel="Gini", vlines=vlines))
    panels.append(paper_panel("(c) weight norm", (Series("weight norm", *thin(m["step"], m["weight_norm"]), colour=4, style="-"),),
                        ylabel="L2 norm", vlines=vlines))
    half = data.get("fraction")
    if half:
        runs = [("fraction 0.3", m), ("fraction 0.5", half[0].metrics)]
        panels.append(paper_panel("(d) test loss by data fraction", tuple(
            Series(label, *_log_curve(mm["step"], mm["test_loss"]), style=("-", "--")[i], colour=5 + i)
            for i, (label, mm) in enumerate(runs)), ylabel="test cross-entropy", logy=True))
    return paper_figure(tuple(panels), caption="a+b mod 113, 30% train, one-layer transformer (d_model 128, 4 heads, d_mlp 512, "
                  "ReLU, no LayerNorm), AdamW lr 1e-3, wd 1, betas (0.9, 0.98), 10-step warm-up, full batch.",
                  columns=2)


NANDA = Reproduction(
    name="nanda",
    title="Progress measures: memorization, circuit formation and cleanup on modular addition",
    paper="Nanda, Chan, Lieberum, Smith, Steinhardt 2023 (ICLR), Fig. 7, sec. 5 and the published runs",
    summary="A one-layer transformer memorizes a+b mod 113 within a few hundred steps, its test loss peaks, and "
            "generalization arrives thousands of steps later, after the Fourier circuit has formed (restricted "
            "loss falls, excluded loss rises, the weights become sparse in frequency) and weight decay has cleaned "
            "up the memorizing parts; more training data shortens the wait.",
    parts=parts, checks=checks, figure=figure,
    minutes={"quick": "under a minute", "full": "about an hour"},
    settings=(
        ("task", "a + b mod 113, inputs `a b =`, 30% of the 12,769 pairs for training", "sec. 4"),
        ("model", "one layer, d_model 128, 4 heads of 32, d_mlp 512, ReLU, no LayerNorm, no biases in attention",
         "sec. 4, App. A"),
        ("init", "N(0, 1/d_model) for every matrix, W_U N(0, 1/d_vocab)", "the paper's code"),
        ("optimizer", "AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), 10-step linear warm-up, full batch",
         "sec. 4, the paper's code"),
        ("loss", "cross-entropy at the last position, in float64", "the paper's code"),
        ("steps", "20,000 (the paper: 40,000; cleanup ends near 14k); quick: 400", "sec. 5.2"),
        ("data fraction", "0.3, and 0.5 for the fraction effect (3,000 steps)", "App. (fraction sweep)"),
        ("key frequencies", "from the final model's W_E Fourier norms", "sec. 5.1"),
    ),
)

REPRODUCTIONS = (NANDA,)

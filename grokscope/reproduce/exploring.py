"""Hu, Zhou, Yu 2024, "Exploring Grokking: Experimental and Mechanistic Investigations" (arXiv
2412.10898): a transformer, an MLP and an LSTM on a + b mod 97 over training fractions, AdamW
with and without weight decay, train and test curves."""

from __future__ import annotations

import numpy as np

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

SOURCE = "Exploring Grokking (arXiv 2412.10898), sec. 3 (shared/REFERENCES.md)"
MODELS = (("transformer", "eg-transformer"), ("mlp", "eg-mlp"), ("lstm", "eg-lstm"))
LABELS = {"transformer": "transformer (2 layers, width 128)", "mlp": "MLP (one-hot, 2 x 512)",
          "lstm": "LSTM (hidden 20)"}
# What 2 CPU cores allow (docs/reproductions.md): the transformer at 0.5 with and without weight
# decay; the MLP over fractions with weight decay and at 0.5 without (`mlp-adam`: its 0.3-0.6 sweep
# without weight decay is cut, 3,250 of its 5,750 core-seconds); the LSTM over fractions with and
# without. Full runs log every 10 steps and stop 1,000 steps after generalizing (`train.stop_after`).
FRACTIONS = {"quick": {"mlp": (0.5,)},
             "full": {"transformer": (0.5,), "mlp": (0.3, 0.4, 0.5, 0.6), "lstm": (0.3, 0.5)}}
STEPS = {"quick": 200, "full": 10000}
WEIGHT_DECAYS = {"quick": "1", "full": "0,1"}
STOP_AFTER = 1000


def parts(scale: str) -> list[Part]:
    logging = ("train.log_every=5",) if scale == "quick" else ("train.log_every=10", f"train.stop_after={STOP_AFTER}")
    out = []
    for name, preset in MODELS:
        if name not in FRACTIONS[scale]:
            continue
        fractions = "task.frac_train=" + ",".join(f"{f:g}" for f in FRACTIONS[scale][name])
        decays = "1" if scale == "full" and name == "mlp" else WEIGHT_DECAYS[scale]
        out.append(Part(name, preset, grid=(fractions, f"optim.weight_decay={decays}"),
                        overrides=(f"train.steps={STEPS[scale]}", *logging), checkpoints=2))
        if scale == "full" and name == "mlp":
            out.append(Part("mlp-adam", preset, grid=("task.frac_train=0.5", "optim.weight_decay=0"),
                            overrides=(f"train.steps={STEPS[scale]}", *logging), checkpoints=2))
    return out


def _runs(data: Data, model: str) -> dict[tuple[float, float], object]:
    """The model's runs over all its parts (`mlp` and `mlp-adam`), by (fraction, weight decay)."""
    return {(float(r.coords["task.frac_train"]), float(r.coords["optim.weight_decay"])): r
            for part, runs in data.items() if part == model or part.startswith(model + "-") for r in runs}


def _steps(run) -> tuple[int | None, int | None]:
    """(first step with train accuracy >= 99%, with test accuracy >= 99%)."""
    return first_step(run.metrics, "train_acc", at_least=0.99), first_step(run.metrics, "test_acc", at_least=0.99)


def _at(step: int | None) -> str:
    return "never" if step is None else f"at {fmt_step(step)}"


def _describe(run) -> str:
    train, test = _steps(run)
    final = float(run.metrics["test_acc"][-1])
    return f"train 99% at {fmt_step(train)}, test 99% at {fmt_step(test)} (final test {final:.2f})"


def checks(scale: str, data: Data) -> list[Check]:
    out = []
    mlp, tr, lstm = _runs(data, "mlp"), _runs(data, "transformer"), _runs(data, "lstm")
    if scale == "quick":
        run = mlp.get((0.5, 1.0))
        if run is not None:
            train, test = _steps(run)
            late = float(run.metrics["test_acc"][-1])
            out.append(Check("MLP, fraction 0.5, weight decay 1: memorizes first", "memorizes (train accuracy first)",
                             _describe(run), train is not None and test is None and late < 0.5,
                             f"train 99%, test below 0.5 at step {STEPS[scale]:,}", SOURCE,
                             "one-hot operands concatenated into the MLP (`model.d_embed = 0`)"))
        return out
    grok = tr.get((0.5, 1.0))
    grok_at = _steps(grok)[1] if grok is not None else None
    if grok is not None:
        train, test = _steps(grok)
        out.append(Check("transformer, fraction 0.5, AdamW (weight decay 1): groks", "groks",
                         _describe(grok), None not in (train, test) and test - train > 500,
                         "test 99% more than 500 steps after train 99%", SOURCE))
    run = mlp.get((0.5, 1.0))
    if run is not None:
        train, test = _steps(run)
        late = float(run.metrics["test_acc"][-1])
        out.append(Check("MLP, fraction 0.5, weight decay 1: does not grok", "does not grok (issue 14's reading: "
                         "the paper's MLP did not grok where a learned-embedding MLP does)", _describe(run),
                         train is not None and test is None and late < 0.5,
                         f"train 99%, test never 99% and below 0.5 at step {STEPS[scale]:,}", SOURCE,
                         "see docs/reproductions.md: ours groks later than the transformer but groks"))
    for model, runs in (("MLP", mlp), ("LSTM", lstm)):
        with_wd = {f: _steps(r)[1] for (f, wd), r in sorted(runs.items()) if wd == 1.0}
        if 0.5 in with_wd and grok_at is not None:
            mine = with_wd[0.5]
            out.append(Check(f"{model} with weight decay 1 at fraction 0.5 against the transformer", "behaves "
                             "differently from the transformer (shared/REFERENCES.md)",
                             "test 99% at " + ", ".join(f"{f:g}: {fmt_step(t)}" for f, t in with_wd.items())
                             + f" (transformer at 0.5: {fmt_step(grok_at)})", mine is None or mine > grok_at,
                             "at the same fraction (0.5), test 99% later than the transformer's, or never", SOURCE))
    for model, runs in (("transformer", tr), ("MLP", mlp), ("LSTM", lstm)):
        adam = [r for (f, wd), r in runs.items() if wd == 0.0]
        if adam:
            best = max(float(np.max(r.metrics["test_acc"])) for r in adam)
            out.append(Check(f"{model}, no weight decay (Adam): generalizes at no fraction",
                             "weight decay is needed", f"best test accuracy {best:.2f} over {len(adam)} run{'s' if len(adam) != 1 else ''}",
                             best < 0.9, "test accuracy never 0.9", SOURCE))
    if lstm:
        def fit(r) -> str:
            t90, tr99 = first_step(r.metrics, "test_acc", at_least=0.9), _steps(r)[0]
            return (f"train {float(np.max(r.metrics['train_acc'])):.2f}, test {float(np.max(r.metrics['test_acc'])):.2f}"
                    f" (test 90% {_at(t90)}, train 99% {_at(tr99)})")
        out.append(Check("LSTM (hidden 20) with weight decay 1: best train and test accuracy by fraction", "not stated",
                         "; ".join(f"{f:g}: {fit(r)}" for (f, wd), r in sorted(lstm.items()) if wd == 1.0),
                         None, "not judged: the paper's text gives no number", SOURCE))
    return out


def figure(scale: str, data: Data) -> FigureSpec:
    panels = []
    for i, (model, _) in enumerate(MODELS):
        runs = _runs(data, model)
        series = []
        for wd, style, name in ((1.0, "-", "AdamW"), (0.0, "--", "Adam")):
            run = runs.get((0.5, wd))
            if run is None:
                continue
            for split in ("train", "test"):
                series.append(Series(f"{split}, {name}", *thin(run.metrics["step"], run.metrics[f"{split}_acc"]),
                                     split=split, style=style))
        if series:
            panels.append(paper_panel(f"({'abc'[len(panels)]}) {LABELS[model]}, fraction 0.5", tuple(series),
                                ylabel="accuracy"))
    sweep = []
    for i, (model, _) in enumerate(MODELS):
        runs = {f: r for (f, wd), r in _runs(data, model).items() if wd == 1.0}
        if runs and scale == "full":
            fr = sorted(runs)
            sweep.append(Series(f"{LABELS[model].split(' (')[0]}, AdamW", tuple(fr), tuple(float(runs[f].metrics["test_acc"][-1]) for f in fr),
                                style="o-", colour=i))
    if sweep:
        panels.append(paper_panel(f"({'abcd'[len(panels)]}) final test accuracy by fraction", tuple(sweep),
                            xlabel="training fraction", ylabel="test accuracy"))
    return paper_figure(tuple(panels), columns=min(2, len(panels)),
                  caption=f"a + b mod 97, full batch, AdamW lr 1e-3, betas (0.9, 0.98), 10-step warm-up, weight decay "
                          f"1 (AdamW) or 0 (Adam), {STEPS[scale]:,} steps"
                          + (f" (a run stops {STOP_AFTER:,} steps after test accuracy reaches 99%)" if scale == "full"
                             else "") + "; cross-entropy.")


def notes(scale: str, data: Data) -> list[str]:
    out = ["The paper's text fixes the architectures and the task; the optimizer's learning rate and betas, the "
           "warm-up and full-batch training follow Nanda et al.'s recipe (shared/REFERENCES.md gives no more)."]
    if scale != "full":
        return out
    out.append("Cut from the paper's grid to fit 2 CPU cores: the transformer's fractions other than 0.5, the MLP "
               "without weight decay at fractions other than 0.5, the LSTM at 0.4 and 0.6; every run is 10,000 "
               f"steps at most and stops {STOP_AFTER:,} steps after test accuracy reaches 99% (`train.stop_after`), "
               "so a generalizing run's curve ends early. Metrics every 10 steps.")
    mlp, tr = _runs(data, "mlp"), _runs(data, "transformer")
    if (0.5, 1.0) in mlp and (0.5, 1.0) in tr and _steps(mlp[(0.5, 1.0)])[1] is not None:
        mine, theirs = _steps(mlp[(0.5, 1.0)])[1], _steps(tr[(0.5, 1.0)])[1]
        order = ("later than" if theirs is not None and mine > theirs else "no later than")
        smallest = min(f for f, wd in mlp if wd == 1.0)
        low = _steps(mlp[(smallest, 1.0)])[1]
        low_text = (f"not at all in {int(mlp[(smallest, 1.0)].metrics['step'][-1]):,} steps" if low is None
                    else f"at step {fmt_step(low)}")
        out.append(f"Our MLP with one-hot operands groks (test 99% at step {fmt_step(mine)} at fraction 0.5, against "
                   f"the transformer's {fmt_step(theirs)}): {order} the transformer, and {low_text} at the smallest "
                   f"fraction ({smallest:g}); it does grok, which issue 14 read the paper as excluding. The paper's "
                   "MLP training settings beyond the architecture are not in shared/REFERENCES.md; "
                   "docs/reproductions.md lists what was tried.")
    return out


EXPLORING = Reproduction(
    name="exploring-grokking",
    title="Exploring Grokking: transformer, MLP and LSTM, with and without weight decay",
    paper="Hu, Zhou, Yu 2024, Exploring Grokking: Experimental and Mechanistic Investigations (arXiv 2412.10898)",
    summary="On a + b mod 97 a two-layer transformer groks with AdamW, most clearly near 50% training data; the MLP "
            "and the LSTM behave differently; without weight decay no model generalizes.",
    parts=parts, checks=checks, figure=figure, notes=notes,
    minutes={"quick": "under a minute", "full": "hours"},
    settings=(
        ("task", "a + b mod 97, inputs `a b =`; training fractions 0.3-0.6", "sec. 3"),
        ("transformer", "2 layers, d_model 128, 4 heads of 32, d_mlp 512, ReLU, no LayerNorm", "sec. 3"),
        ("MLP", "the two operands one-hot (2 x 97) concatenated, 2 hidden layers of 512, ReLU, PyTorch's init",
         "sec. 3"),
        ("LSTM", "embedding 20, one LSTM layer of hidden size 20, readout at `=`", "sec. 3"),
        ("optimizer", "AdamW lr 1e-3, weight decay 1 against 0 (Adam), betas (0.9, 0.98), 10-step warm-up, full "
                      "batch (the text fixes neither lr nor betas: Nanda et al.'s recipe)", "sec. 3"),
        ("steps", "10,000, a run stopping 1,000 steps after test accuracy reaches 99% (quick: 200, the MLP at 0.5 "
                  "with weight decay 1 only)", "ours: what 2 cores allow"),
        ("grid (full)", "transformer 0.5 with and without weight decay; MLP 0.3-0.6 with weight decay 1 and 0.5 "
                        "without; LSTM 0.3 and 0.5 with and without. Cut: the transformer's other fractions, the "
                        "MLP without weight decay at other fractions, the LSTM at 0.4 and 0.6",
         "ours: what 2 cores allow"),
    ),
)

REPRODUCTIONS = (EXPLORING,)

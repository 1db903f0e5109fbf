"""Liu, Michaud, Tegmark 2023, "Omnigrok: Grokking Beyond Algorithmic Data" (ICLR 2023): the L/U
landscape of the teacher-student MLP, MNIST grokking from a large initialization, and modular
addition with grokking removed by holding the weight norm."""

from __future__ import annotations

import numpy as np

from grokscope.measures.landscape import landscape_summary
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

SOURCE = "Omnigrok (Liu, Michaud, Tegmark 2023), the authors' code and outputs (shared/REFERENCES.md)"
MNIST_STEPS = {"quick": 2000, "full": 100000}


def parts(scale: str) -> list[Part]:
    quick = scale == "quick"
    return [
        Part("teacher-student", "teacher-student", landscape="0.3,1,10" if quick else "0.1:10:11:log",
             overrides=("train.steps=1500",) if quick else ()),
        Part("mnist", "omnigrok-mnist", overrides=(f"train.steps={MNIST_STEPS[scale]}",), checkpoints=10,
             needs_data=True),
        Part("modadd", "nanda", overrides=("optim.weight_decay=0", "train.fixed_norm=0.8",
                                           f"train.steps={350 if quick else 1500}"), checkpoints=5),
    ]


def _landscape(data: Data) -> dict[str, np.ndarray]:
    runs = sorted(data["teacher-student"], key=lambda r: r.coords["scale"])
    table = {"scale": np.array([r.coords["scale"] for r in runs], dtype=float),
             "norm": np.array([float(r.info.get("fixed_norm") or np.nan) for r in runs]),
             "best_train_loss": np.array([np.nanmin(r.metrics["train_loss"]) for r in runs]),
             "best_test_loss": np.array([np.nanmin(r.metrics["test_loss"]) for r in runs])}
    return table


def _at(m, column: str, step: int) -> float:
    steps = np.asarray(m["step"])
    i = int(np.searchsorted(steps, step))
    return float(m[column][min(i, len(steps) - 1)])


def checks(scale: str, data: Data) -> list[Check]:
    full = scale == "full"
    table = _landscape(data)
    summary = landscape_summary(table)
    at10 = float(table["best_test_loss"][np.argmin(abs(table["scale"] - 10))])
    out = [
        Check("L: the train loss fits from scale (x w0)", "0.63",
              "at no scale" if summary["threshold_scale"] is None else f"{summary['threshold_scale']:g}",
              summary["threshold_scale"] is not None and 0.3 <= summary["threshold_scale"] <= 1.0,
              "between 0.3 and 1 (one grid step of 0.63)" if full else "between 0.3 and 1", SOURCE),
        Check("U: the test loss is lowest at scale", "near 1", f"{summary['test_min_scale']:g}",
              0.4 <= summary["test_min_scale"] <= 2.5, "between 0.4 and 2.5", SOURCE),
        Check("U: best test loss at scale 10", "about 10", f"{at10:.3g}", 5 <= at10 <= 20 if full else None,
              "within 2x", SOURCE, "grokscope used to read about 32 here: its MLP drew weights N(0, 1/fan_in), "
              "not PyTorch's U(±1/√fan_in) that Omnigrok's scale multiplies; `model.init = \"torch\"` fixes it"),
    ]
    out += _mnist_checks(full, data["mnist"][0].metrics) if data.get("mnist") else []
    ma = data["modadd"][0].metrics
    mem, gen = first_step(ma, "train_acc", at_least=0.99), first_step(ma, "test_acc", at_least=0.99)
    gap = None if mem is None or gen is None else gen - mem
    out.append(Check("modular addition, norm held at 0.8 w0, no weight decay: test follows train",
                     "within tens of steps, near step 300", f"99% train at {fmt_step(mem)}, 99% test at {fmt_step(gen)}",
                     gap is not None and gap <= 100 and mem <= 600, "gap at most 100 steps, train by 600", SOURCE))
    return out


def _mnist_checks(full: bool, mn) -> list[Check]:
    norm = np.asarray(mn["weight_norm"], dtype=float)
    fit = first_step(mn, "train_acc", at_least=0.99)
    out = [
        Check("MNIST: initial weight norm at init scale 8", "about 92 (8 x 11.7)", f"{norm[0]:.1f}",
              82 <= norm[0] <= 102, "within 10%", SOURCE),
        Check("MNIST: train accuracy about 1 (step)", "by about 2,000", fmt_step(fit),
              fit is not None and fit <= 4000, "by 4,000", SOURCE),
        Check("MNIST: test accuracy at step 2,000 (before it climbs)", "0.12-0.2 until about 5,000",
              f"{_at(mn, 'test_acc', 2000):.2f}", _at(mn, "test_acc", 2000) <= 0.35, "at most 0.35", SOURCE),
    ]
    if full:
        for step, paper, tol in ((17000, 0.5, 0.15), (35000, 0.8, 0.1), (100000, 0.88, 0.08)):
            acc = _at(mn, "test_acc", step)
            out.append(Check(f"MNIST: test accuracy at step {step:,}", f"about {paper:g}", f"{acc:.2f}",
                             abs(acc - paper) <= tol, f"within {tol:g}", SOURCE))
        out.append(Check("MNIST: weight norm at the end", "falls from about 92 to about 52",
                         f"{norm[0]:.1f} -> {norm[-1]:.1f}", 0.8 * 52 <= norm[-1] <= 1.2 * 52, "within 20% of 52",
                         SOURCE))
    return out


def figure(scale: str, data: Data) -> FigureSpec:
    table = _landscape(data)
    lu = tuple(Series(f"best {s} loss", tuple(table["norm"]), tuple(np.maximum(table[f"best_{s}_loss"], 1e-8)),
                      split=s, style="o-") for s in ("train", "test"))
    mn = data["mnist"][0].metrics
    acc = tuple(Series(s, *thin(mn["step"], mn[f"{s}_acc"]), split=s, style="-") for s in ("train", "test"))
    norm = (Series("weight norm", *thin(mn["step"], mn["weight_norm"]), colour=2, style="-"),)
    ma = data["modadd"][0].metrics
    mod = tuple(Series(s, *thin(ma["step"], ma[f"{s}_acc"]), split=s, style="-") for s in ("train", "test"))
    return paper_figure((
        paper_panel("(a) teacher-student: L and U", lu, xlabel="weight norm", ylabel="MSE", logx=True, logy=True),
        paper_panel("(b) MNIST, init x8: accuracy", acc, ylabel="accuracy", logx=scale == "full"),
        paper_panel("(c) MNIST: weight norm", norm, ylabel="L2 norm", logx=scale == "full"),
        paper_panel("(d) a+b mod 113, norm held at 0.8 w0", mod, ylabel="accuracy"),
    ), caption="(a) best train and test loss of the 5-100-100-5 tanh student at each weight norm held fixed "
               "(Adam lr 3e-4, no weight decay); (b, c) MNIST, 1,000 training images, 784-200-200-10 ReLU, MSE to "
               "one-hot, AdamW lr 1e-3, wd 0.01, batch 200, init x8; (d) Nanda's transformer with the norm held at "
               "0.8 of its initial norm and no weight decay.", columns=2)


OMNIGROK = Reproduction(
    name="omnigrok",
    title="Omnigrok: the L/U landscape, MNIST grokking from a large init, grokking removed at fixed norm",
    paper="Liu, Michaud, Tegmark 2023 (ICLR), Figs. 1-4 and the authors' code",
    summary="Train loss is low for every weight norm above a threshold (an L), test loss only in a band (a U). "
            "A model started at a large norm fits its training set at once and generalizes only as weight decay "
            "walks its norm into the U (MNIST grokking); held at a norm inside the U, modular addition "
            "generalizes as soon as it fits.",
    parts=parts, checks=checks, figure=figure,
    minutes={"quick": "about a minute", "full": "under half an hour"},
    settings=(
        ("init", "PyTorch's default (nn.Linear: U(±1/√fan_in) weights and biases) times the scale "
         "(`model.init = \"torch\"`)", "the authors' code"),
        ("landscape", "teacher-student 5-100-100-5 tanh, 100 train / 100 test, Adam lr 3e-4, 10k steps per norm, "
         "norm held at scale x w0, weight decay 0; scales 0.1-10 (11, log) (quick: 0.3, 1, 10 at 1.5k steps)",
         "Fig. 1, the authors' code"),
        ("MNIST", "1,000 training images, 784-200-200-10 ReLU, MSE to one-hot, AdamW lr 1e-3, wd 0.01, batch 200, "
         "init scale 8, 100k steps (quick: 2k)", "Fig. 3"),
        ("MNIST data", "--data-dir: with only the official test files, 1,000 of the 10,000 test images train "
         "and the other 9,000 test", "(docs/omnigrok.md)"),
        ("modular addition", "Nanda's mainline with the norm held at 0.8 w0, no weight decay, 1,500 steps "
         "(quick: 350)", "Fig. 4"),
    ),
)

REPRODUCTIONS = (OMNIGROK,)

"""Kumar et al. 2024, Fig. 3a: the delay between train and test loss grows with the output scale
alpha; small alpha removes grokking. Trains the `kumar` preset at alpha = 2^-5 ... 2^5 (two at a
time), writes docs/figures/kumar_alpha_sweep.{png,pdf,svg,csv} and prints the steps at which
train and test loss fell to 10% of their initial values.

    python bench/kumar_alpha_sweep.py [--steps 60000] [--jobs 2] [--out checkpoints/kumar-alpha]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def train_one(args: tuple[float, int, str]) -> str:
    import torch

    from grokscope import load_preset, with_overrides
    from grokscope.training import ensure_trained

    alpha, steps, out = args
    torch.set_num_threads(1)
    config = with_overrides(load_preset("kumar"), [f"model.alpha={alpha}", f"train.steps={steps}",
                                                   "checkpoint.every=5000", "checkpoint.log_points=20",
                                                   "checkpoint.dense_until=10"])
    return str(ensure_trained(config, Path(out) / f"alpha{alpha:g}").path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="checkpoints/kumar-alpha")
    args = ap.parse_args()
    alphas = [2.0 ** k for k in range(-5, 6)]
    with ProcessPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(train_one, [(a, args.steps, args.out) for a in alphas]))

    from grokscope.report.figures import figure, save_figure
    from grokscope.store import load_run
    from grokscope.tables import write_table

    fig = figure(height=2.6)
    ax_train, ax_test = fig.subplots(1, 2, sharey=True)
    cmap = __import__("matplotlib").colormaps["viridis"]
    rows = []
    for i, (alpha, path) in enumerate(zip(alphas, paths)):
        run = load_run(path)
        m = run.metrics
        colour = cmap(i / (len(alphas) - 1))
        ax_train.plot(m["step"][1:], m["train_loss"][1:], color=colour, label=f"{alpha:g}")
        ax_test.plot(m["step"][1:], m["test_loss"][1:], color=colour)
        mem, gen = run.memorization_step, run.generalization_step
        rows.append((alpha, mem, gen))
        print(f"alpha {alpha:>8g}: train loss <= 10% at step {mem}, test loss <= 10% at step {gen}, "
              f"delay {gen - mem if mem is not None and gen is not None else 'n/a'}")
    for ax, title in ((ax_train, "train loss"), (ax_test, "test loss")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title)
    ax_train.legend(title="alpha", frameon=False, ncol=2, fontsize=6)
    out = ROOT / "docs" / "figures" / "kumar_alpha_sweep"
    save_figure(fig, out)
    nan = float("nan")
    write_table(out.with_suffix(".csv"), {
        "alpha": np.array([r[0] for r in rows]),
        "train_10pct_step": np.array([nan if r[1] is None else r[1] for r in rows], dtype=float),
        "test_10pct_step": np.array([nan if r[2] is None else r[2] for r in rows], dtype=float)})
    print(f"figure: {out}.png")


if __name__ == "__main__":
    main()

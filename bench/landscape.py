"""Omnigrok figures: wall time of the teacher-student landscape (11 norms) and of the MNIST
landscape (21 norms) on this machine through the local executor (2 processes), and the time per
1,000 steps of `omnigrok-mnist`. Also checks the fixed-norm `nanda` run (norm held at 0.8 w0,
no weight decay): the delay between memorization and generalization.

    python bench/landscape.py [--data-dir ../shared/data/mnist] [--skip-nanda] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from grokscope import load_preset, train, with_overrides
from grokscope.experiments.landscape import landscape, parse_scales

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--out", help="keep the landscapes here (default: a temporary folder)")
    ap.add_argument("--skip-nanda", action="store_true")
    ap.add_argument("--nanda-steps", type=int, default=1500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        table = landscape(load_preset("teacher-student"), parse_scales("0.1:10:11:log"), out / "teacher-student",
                          jobs=2, progress=False)
        dt = time.perf_counter() - t0
        summary = json.loads((out / "teacher-student" / "landscape.json").read_text())
        print(f"teacher-student landscape, 11 norms x 10k steps, 2 processes: {dt:.0f} s")
        for s, tr, te in zip(table["scale"], table["best_train_loss"], table["best_test_loss"]):
            print(f"  scale {s:7.3g}: best train loss {tr:.3g}, best test loss {te:.3g}")
        print(f"  train fits from scale {summary['threshold_scale']}; test-loss minimum at scale "
              f"{summary['test_min_scale']} ({summary['test_min_loss']:.3g})")

        if Path(args.data_dir, "t10k-images-idx3-ubyte.gz").exists():
            config = with_overrides(load_preset("mnist-small"), [f"task.data_dir={args.data_dir}"])
            t0 = time.perf_counter()
            table = landscape(config, parse_scales("0.1:10:21:log"), out / "mnist", jobs=2, progress=False)
            dt = time.perf_counter() - t0
            print(f"MNIST landscape, 21 norms x {config.train.steps} steps, 2 processes: {dt:.0f} s")
            for s, tr, te, acc in zip(table["scale"], table["best_train_loss"], table["best_test_loss"],
                                      table["best_test_acc"]):
                print(f"  scale {s:7.3g}: best train loss {tr:.3g}, best test loss {te:.3g}, best test acc {acc:.3f}")
            grok = with_overrides(load_preset("omnigrok-mnist"), [f"task.data_dir={args.data_dir}",
                                                                   "train.steps=2000"])
            run = train(grok, out / "omnigrok-mnist-2k", progress=False)
            print(f"omnigrok-mnist: {run.info['train_seconds'] / 2:.1f} s per 1,000 steps "
                  f"(batch 200, test on 9,000 images every 100 steps); after 2k steps train acc "
                  f"{run.metrics['train_acc'][-1]:.3f}, test acc {run.metrics['test_acc'][-1]:.3f}, "
                  f"weight norm {run.metrics['weight_norm'][0]:.1f} -> {run.metrics['weight_norm'][-1]:.1f}")

        if not args.skip_nanda:
            config = with_overrides(load_preset("nanda"), ["optim.weight_decay=0", "train.fixed_norm=0.8",
                                                           f"train.steps={args.nanda_steps}"])
            run = train(config, out / "nanda-fixed", progress=False)
            print(f"nanda, norm held at 0.8 w0, no weight decay, {args.nanda_steps} steps: memorized at "
                  f"{run.memorization_step}, generalized at {run.generalization_step} "
                  f"({run.info['train_seconds']:.0f} s)")


if __name__ == "__main__":
    main()

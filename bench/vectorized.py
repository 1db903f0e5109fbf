"""When does stacked training pay? Seconds per model-step, stacked (M models in one
`train_many` group) against the plain trainer (one model), on one core, for models of growing
size; prints the estimated FLOP per model step that `--vectorize auto` compares with
AUTO_MAX_FLOPS.

    python bench/vectorized.py [--steps 200] [--models 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from grokscope import load_preset, train, with_overrides
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training.stacked import AUTO_MAX_FLOPS, flops_per_step, train_many

CASES = {
    "liu-toy (p=10)": ("liu-toy", []),
    "mlp, p=23 one-hot, 128 hidden": ("mlp", ["task.p=23", "model.d_embed=0", "model.hidden=128"]),
    "transformer d32, p=23": ("quickstart", ["task.p=23", "model.d_model=32", "model.d_head=8",
                                             "model.d_mlp=128"]),
    "mlp, p=97, 512 hidden": ("mlp", []),
    "quickstart transformer (p=59)": ("quickstart", []),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--models", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [f"train.steps={args.steps}", f"checkpoint.every={args.steps}", "checkpoint.dense_until=0",
            "checkpoint.log_points=0"]
    print(f"{'case':32s} {'FLOP/step':>10s} {'plain ms':>9s} {'stacked ms':>11s} {'speedup':>8s}  auto")
    for label, (preset, extra) in CASES.items():
        base = with_overrides(load_preset(preset), sets + extra)
        configs = [with_overrides(base, [f"train.seed={i}", f"optim.lr={1e-3 * (1 + i / 10)}"])
                   for i in range(args.models)]
        task = build_task(base)
        torch.manual_seed(0)
        n_params = sum(p.numel() for p in build_model(base, task).parameters())
        flops = flops_per_step(base, n_params, len(task.train_indices))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(configs[0], Path(tmp) / "plain", progress=False)
            plain = (time.perf_counter() - t0) / args.steps
            t0 = time.perf_counter()
            train_many(configs, [Path(tmp) / f"v{i}" for i in range(args.models)])
            stacked = (time.perf_counter() - t0) / args.steps / args.models
        print(f"{label:32s} {flops:10.2g} {plain * 1e3:9.2f} {stacked * 1e3:11.2f} {plain / stacked:7.1f}x"
              f"  {'stack' if flops <= AUTO_MAX_FLOPS else 'one by one'}")


if __name__ == "__main__":
    main()

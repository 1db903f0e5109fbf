"""Wall time of the `quickstart` preset to test accuracy >= 99%, and the share of training time
spent writing checkpoints, metrics and resume state at the default schedule.

Also estimates the same I/O share for a full `nanda` run (40k steps) from its schedule, the
measured cost of one checkpoint write and the measured step time.

    python bench/quickstart.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from grokscope import load_preset, train
from grokscope.files import save_tensors
from grokscope.measures.losses import loss_and_accuracy
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training.schedule import checkpoint_schedule


def main():
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train(load_preset("quickstart"), Path(tmp) / "q", progress=False)
        wall = time.perf_counter() - t0
        info = run.info
        gen, mem, steps = info["generalization_step"], info["memorization_step"], run.config.train.steps
        per_step = info["train_seconds"] / steps
        print(f"quickstart: {steps} steps in {wall:.1f} s wall ({info['train_seconds']:.1f} s in the loop, "
              f"{per_step * 1e3:.1f} ms/step), {len(run.steps)} checkpoints")
        print(f"memorized at step {mem}, generalized (test acc >= 99%) at step {gen}: "
              f"about {gen * per_step:.0f} s of training in (goal: under 180 s)")
        print(f"I/O: {info['io_seconds']:.2f} s = {info['io_seconds'] / info['train_seconds']:.1%} "
              "of training time (goal < 5%)")

        cfg = load_preset("nanda")
        task = build_task(cfg)
        model = build_model(cfg, task)
        opt = torch.optim.AdamW(model.parameters())
        for _ in range(3):
            loss, _ = loss_and_accuracy(model(task.train_inputs), task.train_labels, "cross_entropy", torch.float64)
            opt.zero_grad(); loss.backward(); opt.step()
        t0 = time.perf_counter()
        for _ in range(10):
            loss, _ = loss_and_accuracy(model(task.train_inputs), task.train_labels, "cross_entropy", torch.float64)
            with torch.no_grad():
                model(task.test_inputs)
            opt.zero_grad(); loss.backward(); opt.step()
        step = (time.perf_counter() - t0) / 10
        t0 = time.perf_counter()
        for i in range(20):
            save_tensors(Path(tmp) / f"c{i}.safetensors", model.state_dict(), {"step": str(i)})
        save = (time.perf_counter() - t0) / 20
        n_ckpt = len(checkpoint_schedule(cfg.train.steps, cfg.checkpoint))
        io = n_ckpt * save
        total = cfg.train.steps * step
        print(f"nanda (estimate): {n_ckpt} checkpoints x {save * 1e3:.1f} ms = {io:.1f} s against "
              f"{cfg.train.steps} steps x {step * 1e3:.1f} ms = {total / 60:.0f} min: {io / total:.2%} I/O")


if __name__ == "__main__":
    main()

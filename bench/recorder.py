"""What the Recorder adds to a user's own training loop on the `nanda` model, and what
`--log wandb` adds to grokscope's trainer, against the same loops without them.

Two measurements each, because on a shared 2-core machine two runs of one loop differ by
several percent: (1) the time spent inside the added calls, summed in the loop, over the loop's
time (plus, for W&B, the CPU time its background process `wandb-core` used); (2) whole loops,
with and without, interleaved `--repeat` times, best of each.

Recorder: a plain loop (forward on the 3,830 training pairs, test loss on the other 8,939,
AdamW) on the `nanda` model, with `rec.wants / rec.checkpoint / rec.log` every step (the nanda
schedule: every step to 100, then log-spaced). W&B: grokscope's trainer on `nanda` with
`--log none` and `--log wandb` (WANDB_MODE=offline).

    python bench/recorder.py [--steps 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import grokscope
from grokscope.config import with_overrides


def _factory():
    config = grokscope.load_preset("nanda")
    return grokscope.build_model(config, grokscope.build_task(config))


def user_loop(steps: int, out: Path | None) -> tuple[float, float, float, int]:
    """(seconds per step, seconds inside rec.log per call, seconds inside rec.wants + rec.checkpoint
    per checkpoint, checkpoints) of a user's loop on nanda; the Recorder when `out` is set."""
    config = grokscope.load_preset("nanda")
    task = grokscope.build_task(config)
    torch.manual_seed(0)
    model = grokscope.build_model(config, task)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    x, y, xt, yt = task.train_inputs, task.train_labels, task.test_inputs, task.test_labels
    rec = grokscope.Recorder(out, model, task=config.task, steps=40_000, model_factory=_factory,
                             config={"optim": {"lr": 1e-3}}) if out is not None else None
    in_log = in_ckpt = 0.0
    n_ckpt = 0
    t0 = time.perf_counter()
    for step in range(steps):
        logits = model(x)
        loss = F.cross_entropy(logits.double(), y)
        with torch.no_grad():
            test_loss = F.cross_entropy(model(xt).double(), yt)
        if rec is not None:
            t = time.perf_counter()
            if rec.wants(step):
                rec.checkpoint(step, model)
                n_ckpt += 1
            t1 = time.perf_counter()
            rec.log(step, train_loss=loss, test_loss=test_loss)
            in_ckpt += t1 - t
            in_log += time.perf_counter() - t1
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    if rec is not None:
        rec.finish(measure_missing=False)
    return seconds / steps, in_log / steps, in_ckpt / max(n_ckpt, 1), n_ckpt


def wandb_core_cpu() -> float:
    """CPU seconds used so far by this process's wandb-core children (0 when none)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "(wandb-core)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def trainer(steps: int, log: str, root: Path) -> tuple[float, float, float]:
    """(train seconds per step, seconds per step inside tracking calls, wandb-core CPU seconds)."""
    import grokscope.tracking as tracking

    config = with_overrides(grokscope.load_preset("nanda"), [f"train.steps={steps}"])
    inside = [0.0]
    real = tracking.WandbTracker.log_rows

    def timed(self, *args, **kwargs):
        t = time.perf_counter()
        real(self, *args, **kwargs)
        inside[0] += time.perf_counter() - t

    tracking.WandbTracker.log_rows = timed
    cpu0 = wandb_core_cpu()
    try:
        run = grokscope.train(config, root / f"nanda-{log}-{time.time_ns()}", progress=False, log=log)
    finally:
        tracking.WandbTracker.log_rows = real
    return run.info["train_seconds"] / steps, inside[0] / steps, wandb_core_cpu() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("WANDB_DIR", tmp)
        user_loop(5, None)  # warm-up
        plain, recorded, logs, ckpts = [], [], [], []
        for i in range(args.repeat):
            plain.append(user_loop(args.steps, None)[0])
            step, log_call, ckpt_call, n_ckpt = user_loop(args.steps, root / f"rec{i}")
            recorded.append(step)
            logs.append(log_call)
            ckpts.append(ckpt_call)
        step, log_call, ckpt_call = min(plain), min(logs), min(ckpts)
        print(f"Recorder on the nanda model, {args.steps} steps ({n_ckpt} of them checkpointed), best of {args.repeat}:")
        print(f"  user's loop alone    {step * 1e3:7.1f} ms/step")
        print(f"  with the Recorder    {min(recorded) * 1e3:7.1f} ms/step   ratio {min(recorded) / step:.3f}")
        print(f"  rec.log {log_call * 1e3:.3f} ms per call ({log_call / step:.2%} of a step); rec.checkpoint "
              f"{ckpt_call * 1e3:.2f} ms per checkpoint")
        full = 40_000 * log_call + 398 * ckpt_call
        print(f"  a whole nanda run (40,000 steps, 398 checkpoints): {full:.1f} s in Recorder calls against "
              f"{40_000 * step / 60:.0f} min of training = ratio {1 + full / (40_000 * step):.4f}")
        none, wb, in_wb, cpu = [], [], [], []
        for _ in range(args.repeat):
            none.append(trainer(args.steps, "none", root)[0])
            step, calls, core = trainer(args.steps, "wandb", root)
            wb.append(step)
            in_wb.append(calls)
            cpu.append(core)
        print(f"--log wandb, grokscope trainer on nanda, {args.steps} steps, best of {args.repeat}:")
        print(f"  --log none           {min(none) * 1e3:7.1f} ms/step")
        print(f"  --log wandb          {min(wb) * 1e3:7.1f} ms/step   ratio {min(wb) / min(none):.3f}")
        print(f"  inside tracking calls {min(in_wb) * 1e3:6.3f} ms/step = {min(in_wb) / min(wb):.2%} of a step; "
              f"wandb-core used {min(cpu):.2f} CPU s over the run ({min(cpu) / (min(wb) * args.steps):.1%} of "
              "its wall time on one core)")


if __name__ == "__main__":
    main()

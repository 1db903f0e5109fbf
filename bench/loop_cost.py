"""What grokscope's training loop costs beyond its steps, in one process, side by side.

Alternates, `--repeats` times over the same `--steps` of the `nanda` preset (same seed, so the
same weights and data in both):

- `bare`: the step the trainer takes, written out with nothing else: the model's forward on the
  training pairs, the float64 loss, the test pass (every step, as the trainer logs every step),
  backward, AdamW; the two losses read to the host (what any loop that prints or stores them
  pays);
- `train`: `grokscope.train` itself (progress line off): the same step plus accuracies, the
  weight norm, the metrics row, the dense checkpoint schedule and the resume state;
- `command`: `grokscope train --preset ... --quiet` as a user runs it, a fresh process: the loop
  plus Python's start, the imports (TransformerLens among them) and the run's set-up;
- `naive` (with `--naive`, default `../shared/bench/naive_nanda.py` beside the checkout): the
  plain-PyTorch reference as a whole process, test loss every step, for the whole-run ratio.

The bare loop keeps freed memory in the process as the trainer does (`devices.keep_freed_memory`),
so `train` / `bare` is the bookkeeping alone.

All are timed as mean milliseconds a step over the whole run (not a best chunk), so `train` /
`bare` is what the loop adds, and `command` / `bare` how far a whole run is from its steps.

    python bench/loop_cost.py [--steps 1000] [--repeats 2] [--preset nanda]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

t_import = time.perf_counter()
import torch  # noqa: E402

from grokscope import load_preset, with_overrides  # noqa: E402
from grokscope.devices import keep_freed_memory  # noqa: E402
from grokscope.measures.losses import DTYPES, loss_value  # noqa: E402
from grokscope.models import build_model  # noqa: E402
from grokscope.tasks import build_task  # noqa: E402
from grokscope.training import train  # noqa: E402
from grokscope.training.optim import lr_at, make_optimizer  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import


def bare(config) -> float:
    """Seconds for config.train.steps + 1 bare steps (the trainer's step 0 to steps)."""
    t = config.train
    task = build_task(config)
    torch.manual_seed(t.seed)
    model = build_model(config, task)
    optimizer = make_optimizer(config, model)
    dtype = DTYPES[t.loss_dtype]
    x, y, tx, ty = task.train_inputs, task.train_labels, task.test_inputs, task.test_labels
    t0 = time.perf_counter()
    for s in range(t.steps + 1):
        model.train()
        loss = loss_value(model(x), y, t.loss, dtype)
        model.eval()
        with torch.no_grad():
            test = loss_value(model(tx), ty, t.loss, dtype)
        loss.item(), test.item()
        if s == t.steps:
            break
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, s) * group["lr_scale"]
        optimizer.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--preset", default="nanda")
    p.add_argument("--naive", default=str(Path(__file__).resolve().parents[2] / "shared" / "bench" / "naive_nanda.py"),
                   help="the plain reference script ('' to skip it)")
    args = p.parse_args()
    keep_freed_memory()
    config = with_overrides(load_preset(args.preset), [f"train.steps={args.steps}"])
    rows: dict[str, list[float]] = {"bare": [], "train": [], "command": [], "naive": []}
    print(f"imports: {IMPORT_SECONDS:.1f} s; {args.preset}, {args.steps:,} steps, {torch.get_num_threads()} threads",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds = bare(config)
            rows["bare"].append(seconds / (args.steps + 1))
            t0 = time.perf_counter()
            run = train(config, Path(tmp) / f"run{i}", progress=False)
            whole = time.perf_counter() - t0
            rows["train"].append(run.info["train_seconds"] / (args.steps + 1))
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "grokscope.cli", "train", "--preset", args.preset, "--set",
                            f"train.steps={args.steps}", "--out", str(Path(tmp) / f"cmd{i}"), "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            rows["command"].append((time.perf_counter() - t0) / (args.steps + 1))
            if args.naive:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, args.naive, str(args.steps)], check=True, stdout=subprocess.DEVNULL,
                               cwd=tmp)
                rows["naive"].append((time.perf_counter() - t0) / (args.steps + 1))
                print(f"#{i}: naive {rows['naive'][-1] * 1e3:6.1f} ms/step as a whole process", flush=True)
            b, t, c = (rows[k][-1] * 1e3 for k in ("bare", "train", "command"))
            print(f"#{i}: bare {b:6.1f}   train {t:6.1f} (the call with set-up {whole / (args.steps + 1) * 1e3:.1f})   "
                  f"command {c:6.1f} ms/step   train/bare {t / b:.3f}   command/bare {c / b:.3f}", flush=True)
    b, t, c = (statistics.median(rows[k]) for k in ("bare", "train", "command"))
    each = lambda k: ", ".join(f"{x / y - 1:+.1%}" for x, y in zip(rows[k], rows["bare"]))  # noqa: E731
    print(f"median: bare {b * 1e3:.1f}, train {t * 1e3:.1f}, command {c * 1e3:.1f} ms/step: the loop adds "
          f"{t / b - 1:+.1%} ({each('train')}), the whole command {c / b - 1:+.1%} ({each('command')})")
    if rows["naive"]:
        n = statistics.median(rows["naive"])
        print(f"whole run: naive reference / grokscope command = {n / c:.2f}x (each: "
              f"{', '.join(f'{x / y:.2f}x' for x, y in zip(rows['naive'], rows['command']))})")


if __name__ == "__main__":
    main()

"""The toy phase diagram's stacked step by group size, with two processes stepping at once (as
`grokscope sweep --jobs 2` runs them), against one group of 88 per process with glibc's default
memory handling (how the sweep ran before `devices.keep_freed_memory` and
`stacked.max_group_size`), side by side:

    python bench/stacked_groups.py [--sizes 88,44,22] [--steps 300]

Each process builds a group of the given size (liu-toy at 1e5 steps, the diagram's learning rates
and weight decays) and times full training steps (forward, backward, AdamW update), best of 3.
Prints milliseconds per step, per 88 model-steps (what one sweep process does per step of the
1e5-step diagram), the ratio against the first row, and page faults and system time per step.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path


def worker(size: int, keep: bool, steps: int, start, queue) -> None:
    import torch

    from grokscope import load_preset, with_overrides
    from grokscope.devices import keep_freed_memory
    from grokscope.training.stacked import StackedStepper

    torch.set_num_threads(1)
    if keep:
        keep_freed_memory()
    base = with_overrides(load_preset("liu-toy"), ["train.steps=100000", "train.log_every=10"])
    cells = [(10 ** (-5 + 3 * i / 15), wd) for i in range(16) for wd in range(11)][:size]
    configs = [with_overrides(base, [f"optim.lr={lr}", f"optim.weight_decay={wd}", f"name=m{k}"])
               for k, (lr, wd) in enumerate(cells)]
    with tempfile.TemporaryDirectory() as tmp:
        st = StackedStepper(configs, [Path(tmp) / c.name for c in configs], "cpu")

    def step():
        st.forward()
        st.apply_update(st.grads, 1.0)

    for _ in range(10):
        step()
    start.wait()  # both processes time at once: they share the memory bandwidth, as in a sweep
    best = (float("inf"), 0.0, 0.0)
    for _ in range(3):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            step()
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        best = min(best, ((t1 - t0) / steps * 1e3, (r1.ru_minflt - r0.ru_minflt) / steps,
                          (r1.ru_stime - r0.ru_stime) / steps * 1e3))
    queue.put(best)


def measure(size: int, keep: bool, steps: int, jobs: int = 2) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(jobs), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(size, keep, steps, start, queue)) for _ in range(jobs)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return tuple(sum(r[i] for r in results) / jobs for i in range(3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="88,44,22", help="group sizes measured with keep_freed_memory")
    ap.add_argument("--steps", type=int, default=300, help="steps per timing round (scaled by 88 / size)")
    args = ap.parse_args()
    rows = [(88, False)] + [(int(s), True) for s in args.sizes.split(",")]
    print("liu-toy stacked step, 2 processes at once, one core each")
    print(f"{'group':>6s} {'keep freed':>10s} {'ms/step':>8s} {'ms/88 model-steps':>18s} {'ratio':>6s} "
          f"{'faults/step':>11s} {'sys ms/step':>11s}")
    ref = None
    for size, keep in rows:
        ms, faults, sys_ms = measure(size, keep, max(20, args.steps * 88 // size))
        per88 = ms * 88 / size
        ref = ref or per88
        print(f"{size:6d} {'yes' if keep else 'no':>10s} {ms:8.2f} {per88:18.2f} {ref / per88:5.2f}x "
              f"{faults:11.0f} {sys_ms:11.2f}", flush=True)


if __name__ == "__main__":
    main()

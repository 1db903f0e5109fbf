"""What keeping freed memory in the process saves a plain CPU run (`devices.keep_freed_memory`).

Trains the same `--steps` of `--preset` (no checkpoints after step 0) in fresh processes,
alternating glibc's default allocator settings (the trainer's call to `keep_freed_memory`
replaced by a no-op) with the trainer's own, and prints wall milliseconds, minor page faults
and system CPU milliseconds a step for each.

    python bench/plain_memory.py [--steps 150] [--repeats 2] [--preset nanda]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import resource, sys, tempfile, time
from pathlib import Path
from grokscope import load_preset, with_overrides
from grokscope.training import loop, train
if sys.argv[1] == "default":
    loop.keep_freed_memory = lambda: False   # glibc's defaults: large blocks unmapped and trimmed when freed
steps = int(sys.argv[3])
config = with_overrides(load_preset(sys.argv[2]), [f"train.steps={steps}", "checkpoint.every=1000000",
                                                    "checkpoint.dense_until=0", "checkpoint.log_points=0"])
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    train(config, Path(tmp) / "run", progress=False)
r1, n = resource.getrusage(resource.RUSAGE_SELF), steps + 1
print(f"{(time.perf_counter() - t0) / n * 1e3:.1f} {(r1.ru_minflt - r0.ru_minflt) / n:.0f} "
      f"{(r1.ru_stime - r0.ru_stime) / n * 1e3:.1f}")
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--preset", default="nanda")
    args = p.parse_args()
    print(f"{args.preset}, {args.steps} steps, fresh processes; per step: wall ms, minor page faults, system ms")
    for i in range(args.repeats):
        for mode in ("default", "kept"):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, args.preset, str(args.steps)],
                                 capture_output=True, text=True, check=True).stdout.split()
            print(f"#{i} {mode:<8} {float(out[0]):7.1f} ms   {int(out[1]):7,} faults   {float(out[2]):5.1f} ms system",
                  flush=True)


if __name__ == "__main__":
    main()

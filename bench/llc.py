"""Cost of an LLC curve: the `llc` probe over 101 checkpoints of a small modular-addition MLP
(the `mlp-small` preset: 4,000 full-batch steps, a checkpoint every 40), on this machine,
with 1 and 2 analysis jobs and a cached re-run, beside devinterp's published figure for its
grokking example (~1.2 s per checkpoint for 500 draws of one chain on a Colab GPU).

    python bench/llc.py            # about 5 minutes on 2 cores

Two settings: devinterp's example (1 chain, 500 draws, no burn-in, batch 128) for the side-by-
side ratio, and the probe's defaults (4 chains of 200 + 200 steps).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

REFERENCE_S = 1.2   # devinterp's example, per checkpoint, 500 draws, Colab GPU


def main() -> None:
    import torch

    from grokscope.analysis.engine import analyze
    from grokscope.config import load_preset
    from grokscope.training.loop import train

    torch.set_num_threads(int(os.environ.get("GROKSCOPE_THREADS", "0")) or torch.get_num_threads())
    work = Path(tempfile.mkdtemp(prefix="bench-llc-"))
    config = load_preset("mlp-small")
    t0 = time.perf_counter()
    run = train(config, work / "run", progress=False)
    print(f"# llc bench: {len(run.steps)} checkpoints of mlp-small ({sum(p.numel() for p in run.model().parameters()):,} "
          f"parameters), trained in {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs\n")
    example = {"chains": 1, "draws": 500, "burnin": 0, "epsilon": 3e-3, "nbeta": 2.0, "gamma": 5.0}
    print("| settings | jobs | seconds | per checkpoint | devinterp's example (GPU) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, params in (("devinterp example: 1 chain x 500 draws", example), ("probe defaults: 4 x (200 + 200)", {})):
        for jobs in (1, 2):
            out = work / f"a-{jobs}-{len(params)}"
            t = time.perf_counter()
            analyze(run, ["llc"], out=out, jobs=jobs, params={"llc": params}, progress=False, report=False)
            s = time.perf_counter() - t
            per = s / len(run.steps)
            print(f"| {name} | {jobs} | {s:.1f} | {per:.3f} s | {REFERENCE_S} s | {per / REFERENCE_S:.2f} |")
        t = time.perf_counter()
        analyze(run, ["llc"], out=out, jobs=2, params={"llc": params}, progress=False, report=False)
        s = time.perf_counter() - t
        print(f"| {name}, cached re-run | 2 | {s:.2f} | {s / len(run.steps):.4f} s | | |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

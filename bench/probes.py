"""Probe speed on Nanda-size models.

1. `fourier` + `progress` on one checkpoint of the published Nanda et al. model (p = 113, all
   12,769 pairs), cold (model load included). Goal: under 2 s on 2 cores.
2. Default probes over the checkpoints of a short `nanda` run: seconds per checkpoint with
   --jobs 1 and --jobs 2, and the wall time of a re-run with nothing new (goal: under 2 s),
   measured as the user runs it (`grokscope analyze` in a fresh process).
3. The kernel probes (`ntk_spectrum`, `ntk_alignment`, `cka`) at their defaults on one checkpoint
   of a short `quickstart` run (p = 59): seconds per checkpoint, best of three.

    python bench/probes.py [--fixture ../shared/fixtures/nanda_p113_wd0.1_seed1_final.pth]
                           [--steps 300] [--count 24] [--skip-kernels]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grokscope import analyze, load_preset, train, with_overrides
from grokscope.analysis.engine import measure_checkpoint
from grokscope.external.importers import import_nanda
from grokscope.probes.base import resolve_probe

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=str(ROOT.parent / "shared" / "fixtures" / "nanda_p113_wd0.1_seed1_final.pth"))
    ap.add_argument("--steps", type=int, default=300, help="length of the nanda run for part 2")
    ap.add_argument("--count", type=int, default=24, help="checkpoints analyzed in part 2")
    ap.add_argument("--skip-kernels", action="store_true", help="leave out part 3")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if Path(args.fixture).exists():
            run = import_nanda(args.fixture, tmp / "published")
            probes = [resolve_probe(n)[0]() for n in ("fourier", "progress")]
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                res = measure_checkpoint(run, run.steps[-1], probes, run_memo={})
                times.append(time.perf_counter() - t0)
            assert all(r["status"] == "ok" for r in res.values()), res
            print(f"fourier + progress, one p=113 checkpoint (12,769 pairs), cold: {min(times):.2f} s "
                  f"(fourier {res['fourier']['seconds']:.2f} s, progress {res['progress']['seconds']:.2f} s; goal < 2 s)")

        config = with_overrides(load_preset("nanda"), [f"train.steps={args.steps}"])
        t0 = time.perf_counter()
        run = train(config, tmp / "nanda", progress=False)
        print(f"nanda run of {args.steps} steps trained in {time.perf_counter() - t0:.0f} s, "
              f"{len(run.steps)} checkpoints")
        for jobs in (1, 2):
            out = tmp / f"analysis-j{jobs}"
            t0 = time.perf_counter()
            analyze(run, out=out, count=args.count, jobs=jobs, progress=False, report=False)
            n = len(__import__("json").loads((out / "manifest.json").read_text())["checkpoints"])
            dt = time.perf_counter() - t0
            print(f"default probes, --jobs {jobs}: {n} checkpoints in {dt:.1f} s = {dt / n:.2f} s per checkpoint")
        out = tmp / "analysis-j1"
        cmd = [sys.executable, "-m", "grokscope.cli", "analyze", str(run.path), "--out", str(out),
               "--count", str(args.count), "--quiet"]
        subprocess.run(cmd, check=True, capture_output=True)  # builds the report once
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        print(f"re-run with nothing new (`grokscope analyze`, fresh process): {time.perf_counter() - t0:.2f} s "
              "(goal < 2 s)")
        if not args.skip_kernels:
            kernel_probes(tmp)


def kernel_probes(tmp: Path) -> None:
    config = with_overrides(load_preset("quickstart"), ["train.steps=300"])
    run = train(config, tmp / "quickstart", progress=False)
    for name in ("ntk_spectrum", "ntk_alignment", "cka"):
        probe = resolve_probe(name)[0]()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            res = measure_checkpoint(run, run.steps[-1], [probe], run_memo={})
            times.append(time.perf_counter() - t0)
        assert res[name]["status"] == "ok", res
        print(f"{name} at its defaults, one quickstart checkpoint (p = 59): {min(times):.2f} s")


if __name__ == "__main__":
    main()

"""The `parallelogram` probe on one checkpoint of Liu et al.'s toy model (p = 10, 70
parallelograms) and of the published Nanda et al. transformer (p = 113, 180,348 parallelograms
mod p), cold (model load included, best of 3); and the critical-fraction curve for p = 10.

    python bench/parallelogram.py [--fixture ../shared/fixtures/nanda_p113_wd0.1_seed1_final.pth]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from grokscope import load_preset, train, with_overrides
from grokscope.analysis.engine import measure_checkpoint
from grokscope.external.importers import import_nanda
from grokscope.measures.parallelogram import critical_fraction
from grokscope.probes.base import resolve_probe

ROOT = Path(__file__).resolve().parents[1]


def probe_seconds(run) -> tuple[float, dict]:
    probe = resolve_probe("parallelogram")[0]()
    best, res = float("inf"), None
    for _ in range(3):
        t0 = time.perf_counter()
        res = measure_checkpoint(run, run.steps[-1], [probe], run_memo={})
        best = min(best, time.perf_counter() - t0)
    assert res["parallelogram"]["status"] == "ok", res
    return best, res["parallelogram"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=str(ROOT.parent / "shared" / "fixtures" / "nanda_p113_wd0.1_seed1_final.pth"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        toy = train(with_overrides(load_preset("liu-toy"), ["train.steps=1500"]), tmp / "toy", progress=False)
        seconds, _ = probe_seconds(toy)
        print(f"parallelogram probe, liu-toy checkpoint (p=10, 70 parallelograms): {seconds * 1000:.1f} ms")
        if Path(args.fixture).exists():
            nanda = import_nanda(args.fixture, tmp / "nanda")
            seconds, _ = probe_seconds(nanda)
            print(f"parallelogram probe, published nanda checkpoint (p=113, 180,348 parallelograms): {seconds:.2f} s")
    t0 = time.perf_counter()
    result = critical_fraction(10)
    print(f"critical_fraction(10): {result.method}, {time.perf_counter() - t0:.2f} s; "
          f"probability 1/2 at training fraction {result.critical:.3f}")
    for n in range(15, 36, 2):
        print(f"  n_train {n:2d} ({n / 55:.2f}): {result.probability[n]:.3f}")


if __name__ == "__main__":
    main()

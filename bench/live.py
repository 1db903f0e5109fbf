"""What `grokscope train --analyze` costs the training, and the whole run against the plain
reference, side by side in one run of this script, as a user meets them (whole processes).

Alternates, `--repeats` times: `grokscope train --preset nanda --set train.steps=N` plain, the
same with `--analyze fourier,progress` (the watcher process at idle priority beside the trainer),
`grokscope analyze` of the plain run afterwards (the same probes: what --analyze replaces), then
`python ../shared/bench/naive_nanda.py N` (the plain-PyTorch reference: the same model and
data, test loss every step, no checkpoints). For each: the whole command's wall time, the
trainer's own `train_seconds` (run.json), and for --analyze how many checkpoints the watcher had
measured when training ended and how long the final analysis took after it.

    python bench/live.py [--steps 1000] [--repeats 2] [--probes fourier,progress] [--naive PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r.stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--probes", default="fourier,progress")
    p.add_argument("--naive", default=str(Path(__file__).resolve().parents[2] / "shared" / "bench" / "naive_nanda.py"))
    args = p.parse_args()
    gs = [sys.executable, "-m", "grokscope.cli", "train", "--preset", "nanda", "--set", f"train.steps={args.steps}",
          "--quiet"]
    rows: dict[str, list[dict]] = {"plain": [], "analyze": [], "after": [], "naive": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(args.repeats):
            wall, _ = timed(gs + ["--out", f"plain{i}"], tmp)
            info = json.loads((tmp / f"plain{i}" / "run.json").read_text())
            rows["plain"].append({"wall": wall, "train": info["train_seconds"]})
            print(f"plain    #{i}: {wall:6.1f} s whole command, {info['train_seconds']:6.1f} s training", flush=True)

            t_end = {}
            wall, _ = timed(gs + ["--out", f"live{i}", "--analyze", args.probes, "--analysis-out", f"an{i}"], tmp)
            info = json.loads((tmp / f"live{i}" / "run.json").read_text())
            manifest = json.loads((tmp / f"an{i}" / "manifest.json").read_text())
            log = (tmp / f"an{i}" / "watch.log").read_text()
            n = len(manifest["checkpoints"])
            t_end = wall - info["train_seconds"]
            rows["analyze"].append({"wall": wall, "train": info["train_seconds"], "n": n, "after": t_end})
            # the watcher's last line before the trainer's last step: what it had measured by then
            last_live = [line for line in log.splitlines() if "analyzed to step" in line]
            print(f"analyze  #{i}: {wall:6.1f} s whole command, {info['train_seconds']:6.1f} s training, "
                  f"{n} checkpoints analyzed; last live line: {last_live[-1] if last_live else '-'}", flush=True)

            wall, _ = timed([sys.executable, "-m", "grokscope.cli", "analyze", f"plain{i}", "--probe", args.probes,
                             "--out", f"after{i}", "--quiet"], tmp)
            rows["after"].append({"wall": rows["plain"][-1]["wall"] + wall, "train": rows["plain"][-1]["train"]})
            print(f"train, then analyze #{i}: {rows['after'][-1]['wall']:6.1f} s both commands", flush=True)

            wall, out = timed([sys.executable, args.naive, str(args.steps)], tmp)
            rows["naive"].append({"wall": wall, "train": json.loads(out.splitlines()[-1])["s_per_step"] * args.steps})
            print(f"naive    #{i}: {wall:6.1f} s whole command, {rows['naive'][-1]['train']:6.1f} s in its loop",
                  flush=True)

    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "train")} for k, v in rows.items()}
    print(f"\nmedians over {args.repeats} ({args.steps} steps):")
    for k in rows:
        print(f"  {k:<8} whole {med[k]['wall']:6.1f} s   training {med[k]['train']:6.1f} s")
    print(f"  --analyze {args.probes}: training {med['analyze']['train'] / med['plain']['train'] - 1:+.1%} "
          f"against plain; whole command {med['analyze']['wall'] / med['plain']['wall']:.2f}x "
          f"(the final analysis after training: "
          f"{statistics.median(r['after'] for r in rows['analyze']):.1f} s); train, then analyze: "
          f"{med['after']['wall'] / med['plain']['wall']:.2f}x")
    print(f"  whole run: naive reference / grokscope = {med['naive']['wall'] / med['plain']['wall']:.2f}x "
          f"(loops alone {med['naive']['train'] / med['plain']['train']:.2f}x)")


if __name__ == "__main__":
    main()

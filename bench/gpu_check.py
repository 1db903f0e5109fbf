"""The GPU check: one script, one table, in under 8 minutes on one GPU (issue: every probe on CUDA,
training at the GPU's speed).

It runs, on `--device` (default cuda):

1. the CUDA tests (`pytest -m "not slow"` on the test files that hold them; they skip without CUDA);
2. `nanda` and `quickstart` through grokscope's trainer (ms per step, from run.json), against the
   plain eager step in the same process (the same model, full batch, forward + backward + AdamW,
   no logging, one synchronization at the end);
3. the Liu et al. toy phase diagram (176 runs) cut to `--liu-steps` and extrapolated to 1e5 steps;
4. `analyze` with the NTK and CKA probes on the device against the CPU.

Rehearse it on the CPU first (what CI machines can do): `python bench/gpu_check.py --device cpu
--quick`. The numbers for docs/benchmarks.md's GPU section are what it prints on a GPU.

    python bench/gpu_check.py [--device cuda] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CUDA_TESTS = ["tests/test_devices.py", "tests/probes/test_devices.py", "tests/training/test_stacked.py",
              "tests/training/test_device_rows.py"]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cuda_tests(device: str) -> str:
    if not device.startswith("cuda"):
        return "not run (the device is the CPU)"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                        *CUDA_TESTS], cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in r.stdout.splitlines() if " passed" in line or " failed" in line]
    return (lines[-1].strip("= ") if lines else f"pytest exited {r.returncode}") + (
        "" if r.returncode == 0 else f" (rc {r.returncode})")


def plain_step_ms(preset: str, steps: int, device: str) -> float:
    """The eager reference: the same model and data, one full-batch AdamW step per iteration."""
    from grokscope import load_preset
    from grokscope.models import build_model
    from grokscope.tasks import build_task

    config = load_preset(preset)
    task = build_task(config)
    torch.manual_seed(config.train.seed)
    model = build_model(config, task).to(device)
    o = config.optim
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay, betas=(o.beta1, o.beta2))
    x, y = task.train_inputs.to(device), task.train_labels.to(device)
    for i in range(steps + 5):
        if i == 5:
            synchronize(device)
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x).to(torch.float64), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    synchronize(device)
    return 1000 * (time.perf_counter() - t0) / steps


def trainer_ms(preset: str, steps: int, device: str, out: Path) -> tuple[float, dict]:
    from grokscope import load_preset, train
    from grokscope.config import with_overrides

    config = with_overrides(load_preset(preset), [f"train.steps={steps}", "train.stop_after=0",
                                                  "checkpoint.log_points=4"])
    run = train(config, out, progress=False, device=device)
    return 1000 * run.info["train_seconds"] / steps, run.info


def liu_diagram_minutes(steps: int, device: str, out: Path) -> tuple[float, float]:
    """Seconds for the 176-run diagram at `steps`, and the extrapolation to 1e5 steps in minutes."""
    from grokscope.experiments.sweep import sweep

    t0 = time.perf_counter()
    sweep("liu-toy", ["optim.lr=1e-5:1e-2:16:log", "optim.weight_decay=0:10:11"],
          overrides=[f"train.steps={steps}", "train.log_every=10"], out=out, jobs=1, device=device,
          progress=False)
    seconds = time.perf_counter() - t0
    return seconds, seconds * 1e5 / steps / 60


def analysis_seconds(run_path: Path, device: str, out: Path) -> float:
    from grokscope.analysis import analyze

    synchronize(device)
    t0 = time.perf_counter()
    analyze(run_path, ["ntk_alignment", "cka"], out=out, count=6, device=device, progress=False, report=False)
    synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="a rehearsal: few steps of everything")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here: rehearse with --device cpu --quick")
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    steps = {"nanda": 50 if args.quick else 2000, "quickstart": 50 if args.quick else 3000}
    liu_steps = 20 if args.quick else 2000
    rows: list[tuple[str, str]] = []
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    rows.append(("device", f"{name}, torch {torch.__version__}"))
    t_start = time.perf_counter()
    rows.append(("CUDA tests", cuda_tests(device)))
    for preset, n in steps.items():
        ms, info = trainer_ms(preset, n, device, out / preset)
        plain = plain_step_ms(preset, min(n, 500), device)
        gen = info.get("generalization_step")
        rows.append((f"{preset}: trainer ms/step ({n:,} steps)", f"{ms:.2f}"))
        rows.append((f"{preset}: plain eager step ms", f"{plain:.2f} (trainer / plain {ms / plain:.2f}x)"))
        rows.append((f"{preset}: generalized at", f"{gen:,}" if gen is not None else "not within the steps"))
    seconds, minutes = liu_diagram_minutes(liu_steps, device, out / "liu")
    rows.append((f"Liu diagram, 176 runs x {liu_steps:,} steps", f"{seconds:.1f} s -> {minutes:.1f} min at 1e5 steps"))
    qs = out / "quickstart"
    on_device = analysis_seconds(qs, device, out / "analysis-device")
    on_cpu = analysis_seconds(qs, "cpu", out / "analysis-cpu")
    rows.append(("analyze ntk_alignment+cka, 6 checkpoints", f"{device} {on_device:.2f} s, cpu {on_cpu:.2f} s "
                                                             f"({on_cpu / on_device:.2f}x)"))
    rows.append(("whole check", f"{time.perf_counter() - t_start:.0f} s"))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows))
    (out / "gpu_check.json").write_text(json.dumps(dict(rows), indent=1))


if __name__ == "__main__":
    main()

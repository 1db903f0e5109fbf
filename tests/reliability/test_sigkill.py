"""SIGKILL at random points of `train`, `analyze`, `sweep` (local and stacked) and `landscape`,
then the same command again: the result is byte for byte the uninterrupted one. Each case starts
fresh processes (about 5 s of imports each), so the suite is `slow`; scripts/test.sh runs it."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow

TRAIN = ["train", "--preset", "quickstart", "--set", "task.p=23", "--set", "model.d_model=32",
         "--set", "model.d_mlp=64", "--set", "train.steps=600", "--set", "checkpoint.every=10",
         "--set", "checkpoint.resume_seconds=0", "--quiet"]
SWEEP = ["sweep", "--preset", "liu-toy", "--grid", "optim.lr=1e-3,3e-3", "--grid", "optim.weight_decay=0,1",
         "--set", "train.steps=1500", "--set", "checkpoint.resume_seconds=0", "--jobs", "2", "--quiet"]
LANDSCAPE = ["landscape", "--preset", "teacher-student", "--scales", "0.5,1,2", "--set", "train.steps=600",
             "--set", "checkpoint.resume_seconds=0", "--jobs", "2", "--quiet"]


def grokscope(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grokscope.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL `proc` (and its workers) once `ready()` holds; False when it finished first."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


def contents(root: Path, patterns: list[str]) -> dict[str, bytes]:
    """The bytes of every file under `root` matching the patterns (run.json and manifests hold
    timings, so they are compared through their other files)."""
    return {str(p.relative_to(root)): p.read_bytes() for pattern in patterns for p in sorted(root.glob(pattern))
            if p.is_file()}


SEEDS = tuple(range(int(__import__("os").environ.get("GROKSCOPE_SIGKILL_SEEDS", "2"))))


def case(tmp_path, tally, name, args, ready_factory, patterns, seeds=SEEDS):
    reference = tmp_path / "reference"
    r = subprocess.run([sys.executable, "-m", "grokscope.cli", *map(str, args), "--out", str(reference)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    expected = contents(reference, patterns)
    assert expected
    for seed in seeds:
        out = tmp_path / f"killed{seed}"
        killed = kill_when(grokscope(*args, "--out", out), ready_factory(out, random.Random(f"{name}{seed}")))
        assert killed, (name, seed, "the command finished before the SIGKILL: the case tested nothing")
        tally[f"SIGKILLs injected ({name})"] += 1
        again = subprocess.run([sys.executable, "-m", "grokscope.cli", *map(str, again_args(args, out))],
                               cwd=ROOT, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
        got = contents(out, patterns)
        differ = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        assert not differ, (name, seed, differ[:5])
        tally[f"identical after SIGKILL and re-run ({name})"] += 1


def again_args(args, out):
    if args[0] == "train":
        return ["train", "--resume", out, "--quiet"]
    return [*args, "--out", out]


def files_at_least(pattern: str, low: int, high: int):
    def factory(out: Path, rng: random.Random):
        n = rng.randint(low, high)
        return lambda: len(list(out.glob(pattern))) >= n
    return factory


def test_sigkill_train(tmp_path, tally):
    case(tmp_path, tally, "train", TRAIN, files_at_least("checkpoints/*.safetensors", 20, 80),
         ["metrics.csv", "split.json", "checkpoints/*", "resume/*"])


def test_sigkill_analyze(tmp_path, tally):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "grokscope.cli", *TRAIN, "--out", str(run)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    args = ["analyze", run, "--probe", "metrics,weights,fourier,progress,cka", "--quiet"]
    case(tmp_path, tally, "analyze", args, files_at_least(".cache/fourier/*.json", 5, 60),
         ["*.csv", "*.npz", "*.spec.json", "phases.json"])


@pytest.mark.parametrize("vectorize", ["never", "always"])
def test_sigkill_sweep(tmp_path, tally, vectorize):
    case(tmp_path, tally, f"sweep {vectorize}", [*SWEEP, "--vectorize", vectorize],
         files_at_least("runs/*/checkpoints/*.safetensors", 3, 20),
         ["runs/*/metrics.csv", "runs/*/checkpoints/*", "runs/*/resume/*", "phases.csv", "phase_diagram.csv"])


def test_sigkill_landscape(tmp_path, tally):
    case(tmp_path, tally, "landscape", LANDSCAPE, files_at_least("scale_*/checkpoints/*.safetensors", 20, 150),
         ["landscape.csv", "landscape.json", "scale_*/metrics.csv", "scale_*/checkpoints/*"])

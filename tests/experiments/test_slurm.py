"""`grokscope sweep --executor slurm` for real through submitit's local executor: real task
processes started from pickled jobs, the timeout/preemption signal, requeueing, and a task
killed outright and resubmitted by running the command again. Each ends byte for byte as the
local executor's sweep."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytest.importorskip("submitit", reason="submitit is not installed (pip install 'grokscope[slurm]')")

GRID = ["--preset", "liu-toy", "--grid", "optim.lr=1e-3,3e-3", "--vectorize", "never", "--jobs", "2", "--quiet"]
SLURM = ["--executor", "slurm", "--slurm-cluster", "local"]
PATTERNS = ("runs/*/metrics.csv", "runs/*/checkpoints/*", "phases.csv")


def sweep(out, *extra, wait=True):
    cmd = [sys.executable, "-m", "grokscope.cli", "sweep", *GRID, *extra, "--out", str(out)]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for pattern in PATTERNS for p in sorted(root.glob(pattern))}


def tasks_of(out: Path) -> list[int]:
    """The pids of the array's task processes (children of submitit's local controllers)."""
    jobs = json.loads((out / ".slurm" / "jobs.json").read_text())["jobs"]
    pids = []
    for controller in jobs:
        r = subprocess.run(["pgrep", "-P", str(controller)], capture_output=True, text=True)
        pids += [int(p) for p in r.stdout.split()]
    return pids


def wait_for(condition, timeout=180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow   # in CI's second pass (scripts/test.sh)
def test_slurm_array_gives_the_local_executors_runs(tmp_path):
    steps = ["--set", "train.steps=300"]
    r = sweep(tmp_path / "local", *steps)
    assert r.returncode == 0, r.stderr
    r = sweep(tmp_path / "slurm", *steps, *SLURM)
    assert r.returncode == 0, r.stderr
    assert contents(tmp_path / "slurm") == contents(tmp_path / "local")
    assert len(json.loads((tmp_path / "slurm" / ".slurm" / "jobs.json").read_text())["jobs"]) == 2
    r = sweep(tmp_path / "slurm", *steps, *SLURM)                 # everything complete: nothing submitted
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_preempted_task_is_requeued_and_a_killed_one_resubmitted(tmp_path):
    """SIGUSR2 (what Slurm sends before a time limit or a preemption) makes submitit checkpoint the
    task and requeue it: it resumes from its run directory. SIGKILL ends a task with no chance to
    requeue: the sweep says which task failed, and the same command again finishes it."""
    steps = ["--set", "train.steps=4000", "--set", "checkpoint.resume_seconds=0", "--checkpoints", "all"]
    r = sweep(tmp_path / "reference", *steps)
    assert r.returncode == 0, r.stderr
    expected = contents(tmp_path / "reference")

    # preemption: the timeout signal to one task mid-run
    out = tmp_path / "preempted"
    proc = sweep(out, *steps, *SLURM, wait=False)
    assert wait_for(lambda: len(list(out.glob("runs/*/resume/state.safetensors"))) >= 1 and tasks_of(out))
    pid = tasks_of(out)[0]
    os.kill(pid, signal.SIGUSR2)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    logs = "".join(p.read_text() for p in out.glob(".slurm/*/*_log.*"))
    assert "this job is preempted" in logs and "Requeued job" in logs
    assert contents(out) == expected

    # a task killed outright: one line naming it, then the same command resumes
    out = tmp_path / "killed"
    proc = sweep(out, *steps, *SLURM, wait=False)
    assert wait_for(lambda: len(list(out.glob("runs/*/resume/state.safetensors"))) >= 1 and tasks_of(out))
    for pid in tasks_of(out):
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) == 1
    err = proc.stderr.read()
    assert "array task" in err and "failed" in err and "run the same command again" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    r = sweep(out, *steps, *SLURM)
    assert r.returncode == 0, r.stderr
    assert contents(out) == expected

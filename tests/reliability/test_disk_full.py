"""A full disk: one line saying what filled and how to continue, status `interrupted`, nothing
lost (resuming gives the files of an uninterrupted run byte for byte); a run the disk clearly
cannot hold is refused before anything is written."""

import errno
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli, tiny_config

import grokscope.files as files_module
from grokscope.errors import DiskFullError, UsageError
from grokscope.training import train


def files(run_dir: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != "run.json":
            out[str(p.relative_to(run_dir))] = p.read_bytes()
    return out


def fill_disk_at(monkeypatch, write: int):
    """The `write`-th atomic write (counting from 1) finds the disk full, once."""
    real, count = os.fsync, [0]

    def fsync(fd):
        count[0] += 1
        if count[0] == write:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files_module.os, "fsync", fsync)
    return lambda: monkeypatch.setattr(files_module.os, "fsync", real)


def test_a_disk_that_fills_at_a_random_write_loses_nothing(tmp_path, monkeypatch, tally):
    config = tiny_config(train={"steps": 120}, checkpoint={"every": 10, "resume_seconds": 0.0})
    real, count = os.fsync, [0]
    monkeypatch.setattr(files_module.os, "fsync", lambda fd: (count.__setitem__(0, count[0] + 1), real(fd))[1])
    train(config, tmp_path / "ref", progress=False)
    monkeypatch.setattr(files_module.os, "fsync", real)
    reference = files(tmp_path / "ref")
    n_writes = count[0]   # every write of the uninterrupted run: each sampled one is reached
    rng = random.Random(13)
    for i, write in enumerate(sorted(rng.sample(range(1, n_writes + 1), 6))):
        out = tmp_path / f"r{i}"
        undo = fill_disk_at(monkeypatch, write)
        with pytest.raises(DiskFullError) as e:   # the fault happened: the run did not finish
            train(config, out, progress=False)
        undo()
        message = str(e.value)
        tally["disk-full faults injected"] += 1
        assert "\n" not in message and "no space left writing" in message and "--resume" in message
        assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
        train(config, out, resume=True, progress=False)
        assert files(out) == reference, write
        tally["runs resumed identically after a full disk"] += 1


def test_a_file_size_limit_gives_one_line_and_no_traceback(tmp_path, tally):
    """A real limit (RLIMIT_FSIZE, the kernel's EFBIG) on the CLI in a fresh process."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "from grokscope.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "train", "--preset", "quickstart", "--set", "task.p=13",
                        "--set", "train.steps=30", "--out", str(tmp_path / "r"), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "no space left writing" in r.stderr and "--resume" in r.stderr
    tally["disk-full faults injected"] += 1


def test_train_refuses_a_disk_that_cannot_hold_the_run(tmp_path, monkeypatch):
    import grokscope.training.state as state

    monkeypatch.setattr(state, "free_bytes", lambda path: 10_000)
    with pytest.raises(UsageError, match=r"needs about .* on disk and 10.0 KB are free"):
        train(tiny_config(), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_the_disk_estimate_is_close_and_info_shows_it_before_the_run(tmp_path):
    run = train(tiny_config(train={"steps": 300}, optim={"grokfast": "ema"}), tmp_path / "r", progress=False)
    used, estimate = files_module.directory_bytes(run.path), run.info["disk_estimate_bytes"]
    assert 0.9 < estimate / used < 1.15, (estimate, used)
    r = cli("info", "--preset", "nanda")
    assert r.returncode == 0 and "disk        about 369.7 MB when complete" in r.stdout
    r = cli("info", run.path)
    assert "disk        " in r.stdout and "when complete" in r.stdout


def test_a_disk_full_reported_at_a_checkpoints_deferred_fsync_loses_nothing(tmp_path, monkeypatch, tally):
    """Trainers fsync their checkpoints with the next resume state (RunWriter.sync_checkpoints);
    a disk that reports itself full only then: the checkpoints not known to be whole are removed,
    the run is interrupted, and resuming gives the uninterrupted run's files byte for byte."""
    config = tiny_config(train={"steps": 120}, checkpoint={"every": 10, "resume_seconds": 0.0})
    train(config, tmp_path / "ref", progress=False)
    reference = files(tmp_path / "ref")
    real, failed = os.fsync, []

    def fsync(fd):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name == "step_00000060.safetensors" and not failed:  # a renamed checkpoint, not a temp file
            failed.append(name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files_module.os, "fsync", fsync)
    out = tmp_path / "r"
    with pytest.raises(DiskFullError, match="no space left writing .*step_00000060.safetensors"):
        train(config, out, progress=False)
    tally["disk-full faults injected"] += 1
    assert failed and not (out / "checkpoints" / "step_00000060.safetensors").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(files_module.os, "fsync", real)
    train(config, out, resume=True, progress=False)
    assert files(out) == reference
    tally["runs resumed identically after a full disk"] += 1

import sys
import types

import pytest
from helpers import cli, interrupt_stacked_at, run_cli

from grokscope.config import load_preset
from grokscope.errors import UsageError
from grokscope.experiments.sweep import expand, parse_grid, parse_seeds, sweep
from grokscope.files import read_json
from grokscope.training import TrainingInterrupted

# ------------------------------------------------------------------ grids and names


def test_parse_grid_forms():
    a = parse_grid("optim.lr=1e-5:1e-2:4:log")
    assert a.scale == "log" and a.values == pytest.approx((1e-5, 1e-4, 1e-3, 1e-2))
    b = parse_grid("optim.weight_decay=0:10:11")
    assert b.scale == "lin" and b.values[0] == 0 and b.values[-1] == 10 and len(b.values) == 11
    c = parse_grid("task.frac_train=0.3,0.5")
    assert c.scale == "list" and c.values == (0.3, 0.5)
    assert parse_grid("optim.name=adamw,adam").values == ("adamw", "adam")
    for bad in ("optim.lr", "optim.nope=1,2", "optim.lr=0:1:3:log", "optim.lr=1:2", "optim.lr=1:2:x",
                "optim.lr=1:2:99999999"):
        with pytest.raises(UsageError):
            parse_grid(bad)


def test_a_seed_count_past_any_sweep_is_refused_before_it_fills_memory():
    assert parse_seeds("3", 5) == [5, 6, 7]
    for bad in ("0", "9999999999", "x"):
        with pytest.raises(UsageError, match="--seeds expects a count from 1 to 10,000"):
            parse_seeds(bad, 0)


def test_expand_names_are_deterministic_and_complete():
    axes = [parse_grid("optim.lr=1e-4,1e-3"), parse_grid("optim.weight_decay=0,1,2")]
    points = expand(["liu-toy", "quickstart"], axes, seeds="2")
    assert len(points) == 2 * 2 * 3 * 2
    assert len({p.name for p in points}) == len(points)
    assert [p.name for p in points] == [p.name for p in expand(["liu-toy", "quickstart"], axes, seeds="2")]
    first = points[0]
    assert first.name == "liu-toy_lr0.0001_weight_decay0_s58"
    assert first.config.optim.lr == 1e-4 and first.config.train.seed == 58
    assert first.config.checkpoint.every == first.config.train.steps  # sparse checkpoints
    assert [p.seed for p in expand(["liu-toy"], [], seeds="3,7")] == [3, 7]


# ------------------------------------------------------------------ phases




GRID = ["optim.lr=1e-4,3e-3", "optim.weight_decay=0,5"]


def test_sweep_interrupted_and_restarted_ends_with_the_same_runs(tmp_path, monkeypatch):
    import grokscope.experiments.executors as sweep_mod

    sets = ["train.steps=40", "checkpoint.resume_seconds=0"]
    whole = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "whole", jobs=1, vectorize="never",
                  progress=False)
    real = sweep_mod.run_unit
    calls = []

    def flaky(unit, threads=1):
        calls.append(unit)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(unit, threads)

    monkeypatch.setattr(sweep_mod, "run_unit", flaky)
    with pytest.raises(TrainingInterrupted, match="run the same command again"):
        sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, vectorize="never",
              progress=False)
    monkeypatch.setattr(sweep_mod, "run_unit", real)
    part = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, vectorize="never",
                 progress=False)
    names = sorted(p.name for p in (whole / "runs").iterdir())
    assert names == sorted(p.name for p in (part / "runs").iterdir()) and len(names) == 4
    for name in names:
        assert ((whole / "runs" / name / "metrics.csv").read_bytes()
                == (part / "runs" / name / "metrics.csv").read_bytes())
    assert (whole / "phases.csv").read_text() == (part / "phases.csv").read_text()


def test_sweep_cli_outputs_and_skips_complete_runs(tmp_path):
    args = ["sweep", "--preset", "liu-toy", *sum((["--grid", g] for g in GRID), []), "--seeds", "2",
            "--set", "train.steps=300", "--jobs", "1", "--out", tmp_path / "s", "--quiet"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "s"
    for name in ("sweep.json", "phases.csv", "phase_diagram.csv", "phase_diagram.png",
                 "phase_diagram.pdf", "phase_diagram.svg", "steps_to_generalize.png", "steps_to_generalize.csv",
                 "curves.png", "curves.csv",
                 "report.md", "report.html"):
        assert (out / name).exists(), name
    runs = list((out / "runs").iterdir())
    assert len(runs) == 8
    assert all(read_json(r / "run.json")["status"] == "complete" for r in runs)
    assert "vectorized" in read_json(runs[0] / "run.json")["trainer"]
    phases = (out / "phases.csv").read_text().splitlines()
    assert len(phases) == 9 and phases[0].startswith("name,preset,optim.lr,optim.weight_decay,seed")
    assert "| comprehension |" in (out / "report.md").read_text()
    before = {r.name: (r / "metrics.csv").stat().st_mtime_ns for r in runs}
    r = cli(*args[:-1])
    assert r.returncode == 0 and "8 complete" in r.stderr
    assert before == {r.name: (r / "metrics.csv").stat().st_mtime_ns for r in runs}


def test_sweep_usage_errors(tmp_path):
    import shutil

    slurm = [["--executor", "slurm"]] if shutil.which("sbatch") is None else []
    for extra in (["--grid", "optim.lr=1:2"], ["--executor", "nope"], *slurm, ["--seeds", "x"],
                  ["--grid", "model.nope=1,2"], ["--checkpoints", "0"]):
        r = cli("sweep", "--preset", "liu-toy", "--out", tmp_path / "x", *extra)
        assert r.returncode == 2, (extra, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists(), extra                 # nothing written


def test_ray_executor_gives_the_same_runs(tmp_path, monkeypatch):
    """A stand-in `ray` module (tasks run in-process): the executor's calls and the outputs."""
    calls = {}

    class Ref:
        def __init__(self, value):
            self.value = value

    fake = types.SimpleNamespace(
        init=lambda address=None, ignore_reinit_error=False: calls.setdefault("address", address),
        remote=lambda **kw: (lambda fn: types.SimpleNamespace(remote=lambda *a: Ref(fn(*a)))),
        wait=lambda refs, num_returns=1, timeout=None: (refs[:num_returns], refs[num_returns:]),
        get=lambda ref: ref.value)
    monkeypatch.setitem(sys.modules, "ray", fake)
    sets = ["train.steps=30"]
    ray_out = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "ray", executor="ray",
                    address="auto", progress=False)
    local = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "local", jobs=1, progress=False)
    assert calls["address"] == "auto"
    assert (ray_out / "phases.csv").read_text() == (local / "phases.csv").read_text()
    runs = sorted(p.name for p in (local / "runs").iterdir())
    assert runs and runs == sorted(p.name for p in (ray_out / "runs").iterdir())
    for name in runs:   # the same training, not only the same phases
        assert (ray_out / "runs" / name / "metrics.csv").read_bytes() == (local / "runs" / name / "metrics.csv").read_bytes()


def test_ray_missing_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match="pip install"):
        sweep("liu-toy", [], overrides=["train.steps=5"], out=tmp_path / "r", executor="ray",
              progress=False)


def test_sweep_refuses_runs_trained_with_another_config(tmp_path):
    sweep("liu-toy", ["optim.lr=1e-4"], overrides=["train.steps=5"], out=tmp_path / "s", jobs=1,
          progress=False)
    with pytest.raises(UsageError, match="train.steps: 5 there, 6 now"):
        sweep("liu-toy", ["optim.lr=1e-4"], overrides=["train.steps=6"], out=tmp_path / "s", jobs=1,
              progress=False)


def test_sweep_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    r = run_cli("sweep", "--preset", "liu-toy", "--grid", "optim.lr=1e-4,1e-3,1e-2", "--seeds", "2",
                "--out", tmp_path / "d", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "6 runs, 0 complete, 6 to train in 2 units" in lines[0]
    assert len(lines) == 7 and all("stacked group" in line for line in lines[1:])
    assert not (tmp_path / "d").exists()


def test_stacked_sweep_interrupted_mid_run_resumes_bit_identically(tmp_path, monkeypatch):
    sets = ["train.steps=60", "checkpoint.resume_seconds=0"]
    whole = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "whole", jobs=1, progress=False)
    undo = interrupt_stacked_at(monkeypatch, 33)
    with pytest.raises(TrainingInterrupted):
        sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, progress=False)
    undo()
    info = read_json(tmp_path / "part" / "runs" / "liu-toy_lr0.0001_weight_decay0_s58" / "run.json")
    assert info["status"] == "interrupted" and len(info["stacked_with"]) == 4
    part = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, progress=False)
    for run in (whole / "runs").iterdir():
        assert (run / "metrics.csv").read_bytes() == (part / "runs" / run.name / "metrics.csv").read_bytes()


@pytest.mark.parametrize("kill_at", [0, 1])
def test_stacked_group_killed_in_its_first_flushes_resumes_bit_identically(tmp_path, monkeypatch, kill_at):
    """Killed after the first run of a stacked group wrote its resume state and before the
    others did (at the group's start, step 0, or its first real flush, step 1): the re-run keeps
    the group together (a member without a resume state is not trained alone or with another
    trainer) and ends byte for byte as the uninterrupted sweep. Found by the SIGKILL suite."""
    from grokscope.training.state import RunState

    sets = ["train.steps=40", "checkpoint.resume_seconds=0"]
    whole = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "whole", jobs=1, vectorize="always",
                  progress=False)

    class Killed(BaseException):
        pass

    real, flushed = RunState.flush, []

    def dying(self):
        if self.step == kill_at and flushed.count(kill_at) == 1:
            raise Killed
        real(self)
        flushed.append(self.step)

    monkeypatch.setattr(RunState, "flush", dying)
    with pytest.raises(Killed):
        sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, vectorize="always", progress=False)
    monkeypatch.setattr(RunState, "flush", real)
    part = sweep("liu-toy", GRID, overrides=sets, out=tmp_path / "part", jobs=1, vectorize="always",
                 progress=False)
    for run in (whole / "runs").iterdir():
        files = sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file() and p.name != "run.json")
        assert files and files == sorted(p.relative_to(part / "runs" / run.name)
                                         for p in (part / "runs" / run.name).rglob("*")
                                         if p.is_file() and p.name != "run.json")
        for f in files:
            assert (run / f).read_bytes() == (part / "runs" / run.name / f).read_bytes(), (run.name, f)


def test_plan_cuts_a_large_stacked_grid_into_groups_that_fit_the_cache(tmp_path):
    """The 1e5-step toy phase diagram: 176 runs of 746 KB (parameters, gradients, Adam moments)
    make two groups of 88 (66 MB each) past GROUP_BYTES, so the plan makes four of 44 (two per
    worker); a small grid stays at one group per worker."""
    from grokscope.experiments.sweep import plan_units

    grid = [parse_grid("optim.lr=1e-5:1e-2:16:log"), parse_grid("optim.weight_decay=0:10:11")]
    points = expand(["liu-toy"], grid, None, ["train.steps=100000"])
    units = plan_units(points, tmp_path, jobs=2, vectorize="auto")
    assert [len(u["runs"]) for u in units] == [44, 44, 44, 44] and all(u["vectorized"] for u in units)
    assert [len(u["runs"]) for u in plan_units(points[:20], tmp_path, jobs=2, vectorize="auto")] == [10, 10]
    assert [len(u["runs"]) for u in plan_units(points, tmp_path, jobs=1, vectorize="auto")] == [59, 59, 58]


def test_a_stopping_sweep_starts_no_queued_unit(tmp_path, monkeypatch):
    """A worker of a stopping sweep skips the units queued before the interrupt, and a worker
    whose training was interrupted tells the others."""
    import multiprocessing

    from grokscope.experiments import executors as sweep_module

    unit = {"vectorized": False, "runs": [(load_preset("liu-toy").to_dict(), str(tmp_path / "r"))]}
    stop = multiprocessing.get_context("spawn").Event()
    monkeypatch.setattr(sweep_module, "_STOP", stop)
    stop.set()
    assert sweep_module.run_unit(unit) == [] and not (tmp_path / "r").exists()
    stop.clear()

    def interrupted(unit, threads):
        raise TrainingInterrupted("interrupted at step 5")

    monkeypatch.setattr(sweep_module, "_train_unit", interrupted)
    with pytest.raises(TrainingInterrupted):
        sweep_module.run_unit(unit)
    assert stop.is_set()


@pytest.mark.slow   # a whole reproduction or fresh processes: run by .ci/run after the README command
def test_sigint_to_the_sweep_process_alone_stops_its_workers(tmp_path):
    """`kill -INT` on the sweep's process (not its process group, as Ctrl-C in a terminal does):
    the workers get it too, flush and stop, and no queued run starts; the rerun finishes."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "s"
    args = [sys.executable, "-m", "grokscope.cli", "sweep", "--preset", "liu-toy", "--grid",
            "optim.lr=1e-4,3e-4,1e-3,3e-3,1e-2,3e-2", "--set", "train.steps=400000", "--jobs", "2",
            "--vectorize", "never", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list((out / "runs").glob("*/metrics.csv"))) < 2 and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    t0 = time.time()
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert time.time() - t0 < 30, "the workers went on training"
    assert proc.returncode != 0 and "sweep interrupted" in err and "Traceback" not in err, err
    statuses = sorted(read_json(p)["status"] for p in (out / "runs").glob("*/run.json"))
    assert statuses == ["interrupted", "interrupted"], statuses  # the four queued runs never started

"""Analysis beside training (grokscope/analysis/live.py): a watcher measures a growing run into
the normal analysis directory and cache, so that the analysis after training computes nothing new
and gives the tables a fresh `analyze` gives; it survives being killed, failing probes and a full
disk without touching the run; the report says it is live; the dashboards get the columns."""

import json
import os
import shutil
import signal
import time

import numpy as np
import pytest
from helpers import cli, run_cli

from grokscope.analysis import analyze
from grokscope.analysis.selection import select_steps
from grokscope.analysis.live import LIVE, Watch, live_steps, next_batch, progress_suffix, watch
from grokscope.errors import DiskFullError
from grokscope.store import load_run

PROBES = ["fourier", "progress"]


def growing(run, dst, upto):
    """A copy of `run` as it was while training, after checkpoint `upto`: status running, the
    checkpoints and metric rows up to there. Called again with a later `upto`, it grows."""
    if not dst.exists():
        shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns("step_*"))
    for path in run.checkpoint_dir.glob("step_*.safetensors"):
        if int(path.name[5:13]) <= upto and not (dst / "checkpoints" / path.name).exists():
            shutil.copy2(path, dst / "checkpoints" / path.name)
    lines = (run.path / "metrics.csv").read_text().splitlines()
    keep = [lines[0]] + [x for x in lines[1:] if int(float(x.split(",")[0])) <= upto]
    (dst / "metrics.csv").write_text("\n".join(keep) + "\n")
    info = json.loads((run.path / "run.json").read_text())
    info["status"] = "running" if upto < run.steps[-1] else info["status"]
    (dst / "run.json").write_text(json.dumps(info))
    return load_run(dst)


def tables_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.csv")) if p.name != "training.csv"}


def test_batches_take_the_newest_then_spread_over_the_rest():
    assert next_batch([1, 2, 3], 8) == [1, 2, 3]
    todo = list(range(0, 100, 2))
    batch = next_batch(todo, 4)
    assert batch[-1] == 98 and batch[0] == 0 and len(batch) == 4
    assert live_steps([0, 5, 10, 15, 17], 5) == [0, 5, 10, 15]      # 17 joins only as the run's last
    assert progress_suffix({}) == ""
    assert progress_suffix({"newest": 1200, "analyzed": 9, "pending": 3,
                            "headlines": {"fourier": "gini_embed 0.4"}}) == \
        "| 9 analyzed to step 1,200, 3 queued: fourier gini_embed 0.4"


def test_a_growing_run_ends_with_the_tables_of_a_fresh_analysis(tiny_run, tmp_path):
    out = tmp_path / "live"
    w = Watch(tmp_path / "run", PROBES, out=out, every=20, batch=2, report_seconds=0)
    seen = []
    for upto in (20, 60, 100):
        growing(tiny_run, tmp_path / "run", upto)
        while w.poll():
            pass
        state = json.loads((out / LIVE).read_text())
        assert state["newest"] == upto and state["pending"] == 0 and state["run_step"] == upto
        html = (out / "report.html").read_text()
        assert "class='live'" in html and "http-equiv='refresh'" in html
        assert f"newest checkpoint at step {upto:,} of 120" in html
        seen.append(state["headlines"]["fourier"].split()[0])
    assert seen == ["gini_embed"] * 3                     # the probe's own headline column
    growing(tiny_run, tmp_path / "run", 120)
    w.finish()
    assert "class='live'" not in (out / "report.html").read_text()
    assert json.loads((out / LIVE).read_text())["state"] == "finished"
    live = tables_bytes(out)
    report = (out / "report.html").read_bytes()

    # the same probes after training: nothing new to compute, the same bytes, the same report
    analyze(tmp_path / "run", PROBES, out=out, every=20, progress=False)
    entries = json.loads((out / "manifest.json").read_text())["probes"]
    assert all(entries[p]["n_cached"] == entries[p]["n_ok"] == 7 for p in PROBES)
    assert tables_bytes(out) == live and (out / "report.html").read_bytes() == report
    # and a fresh analysis elsewhere, at this process's thread count, writes the same tables
    analyze(tiny_run, PROBES, out=tmp_path / "fresh", every=20, progress=False, report=False)
    assert tables_bytes(tmp_path / "fresh") == live


def test_a_new_watcher_picks_up_what_a_killed_one_missed(tiny_run, tmp_path):
    out = tmp_path / "live"
    growing(tiny_run, tmp_path / "run", 60)
    first = Watch(tmp_path / "run", ["weights"], out=out, batch=3)
    assert first.poll() > 0                                # killed here: some measured, some not
    measured = len(list((out / ".cache" / "weights").glob("*.json")))
    assert measured == 3
    growing(tiny_run, tmp_path / "run", 120)
    second = Watch(tmp_path / "run", ["weights"], out=out, batch=100)
    assert second.poll() == 0
    n = len(tiny_run.steps)
    assert second.measured == n - measured                 # each checkpoint measured once over both
    second.finish()
    entry = json.loads((out / "manifest.json").read_text())["probes"]["weights"]
    assert entry["n_ok"] == entry["n_cached"] == n


FAILING = '''
from grokscope.probes.base import Probe

class FailsAt40(Probe):
    name = "fails_at_40"
    version = 1

    def measure(self, ctx):
        if ctx.step == 40:
            raise ValueError("no good at 40")
        return {"value": float(ctx.step)}
'''


def test_a_probe_failing_on_one_checkpoint_is_reported_and_the_rest_go_on(tiny_run, tmp_path):
    (tmp_path / "failing.py").write_text(FAILING)
    spec = f"{tmp_path / 'failing.py'}:FailsAt40"
    growing(tiny_run, tmp_path / "run", 120)
    out = tmp_path / "live"
    w = Watch(tmp_path / "run", [spec, "weights"], out=out, every=20, batch=100)
    assert w.poll() == 0 and w.poll() == 0                  # the failing step is not retried every poll
    assert w.failed == {40}
    entry = json.loads((out / "manifest.json").read_text())["probes"]["fails_at_40"]
    assert entry["status"] == "failed" and "no good at 40" in entry["reason"] and entry["n_ok"] == 6
    assert json.loads((out / "manifest.json").read_text())["probes"]["weights"]["n_ok"] == 7


def test_a_full_disk_in_the_analysis_leaves_the_run_whole(tiny_run, tmp_path, monkeypatch, capsys):
    import subprocess

    import grokscope.analysis.engine as engine

    def full(*a, **k):
        raise DiskFullError(f"{tmp_path / 'live'}: no space left on the device")

    monkeypatch.setattr(engine, "write_table", full)
    gone = subprocess.Popen(["true"])
    gone.wait()                                    # a training process that has ended
    run = growing(tiny_run, tmp_path / "run", 60)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    # while the run trains: said in one line, and tried again at the next look
    assert watch(run.path, ["weights"], out=tmp_path / "live", poll_seconds=0.01, idle=False,
                 parent=gone.pid) is None
    err = capsys.readouterr().err
    assert "watch: " in err and "no space left" in err
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before
    # once it has ended: the final analysis stops with the error (the command prints its one line)
    run = growing(tiny_run, tmp_path / "run", 120)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    with pytest.raises(DiskFullError):
        watch(run.path, ["weights"], out=tmp_path / "live", poll_seconds=0.01, idle=False, progress=False)
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


@pytest.mark.slow   # a whole `train --analyze` and `analyze` in fresh processes (about 25 s): run by .ci/run
def test_train_analyze_from_the_command_line(tmp_path):
    """A real `grokscope train --analyze` (the watcher in its own process), then `analyze` of the
    same probes: nothing to compute, the same tables."""
    r = run_cli("train", "--preset", "quickstart", "--set", "train.steps=300", "--set", "train.stop_after=0",
                "--analyze", "fourier,progress", "--every", "50", "--out", "run", "--quiet", cwd=tmp_path,
                timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "analyses" / "run"
    assert r.stdout.split() == ["run", "analyses/run/report.html"]
    live = tables_bytes(out)
    assert set(live) == {"fourier.csv", "progress.csv"}
    r = cli("analyze", tmp_path / "run", "--probe", "fourier,progress", "--every", "50", "--quiet",
            "--out", out)
    assert r.returncode == 0, r.stderr
    entries = json.loads((out / "manifest.json").read_text())["probes"]
    n = len(select_steps(load_run(tmp_path / "run").steps, 50))
    assert all(entries[p]["n_cached"] == entries[p]["n_ok"] == n for p in ("fourier", "progress"))
    assert tables_bytes(out) == live


@pytest.mark.slow
def test_killing_the_watcher_neither_stops_nor_loses_the_training(tmp_path):
    """kill -9 of the watcher process mid-run: the training finishes, the trainer analyzes what
    the watcher left, and a `grokscope watch` afterwards has nothing to compute."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "grokscope.cli", "train", "--preset", "quickstart",
                             "--set", "train.steps=1500", "--set", "train.stop_after=0", "--analyze", "progress",
                             "--every", "100", "--out", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    live = tmp_path / "analyses" / "run" / LIVE
    deadline = time.monotonic() + 300
    while not (live.exists() and json.loads(live.read_text()).get("analyzed")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    os.kill(json.loads(live.read_text())["pid"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "the watcher exited with -9" in stderr and "analyzing here" in stderr
    assert load_run(tmp_path / "run").status == "complete"
    r = cli("watch", tmp_path / "run", "--probe", "progress", "--every", "100", "--quiet",
            "--out", tmp_path / "analyses" / "run")
    assert r.returncode == 0, r.stderr
    entry = json.loads((tmp_path / "analyses" / "run" / "manifest.json").read_text())["probes"]["progress"]
    assert entry["n_cached"] == entry["n_ok"] == len(select_steps(load_run(tmp_path / "run").steps, 100))


def test_usage_errors_stop_before_training(tmp_path):
    for args, words in [(["--analyze", "nosuchprobe"], "nosuchprobe"),
                        (["--every", "5"], "--analyze"),
                        (["--analyze", "fourier", "--every", "0"], "--every"),
                        (["--analyze", "fourier", "--param", "cka.x=1"], "cka")]:
        r = cli("train", "--preset", "quickstart", "--out", tmp_path / "x", *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()
    r = cli("watch", tmp_path / "nothing")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_tensorboard_reads_what_training_and_the_watcher_wrote(tiny_run, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e .[tensorboard])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import grokscope
    from helpers import tiny_config

    run = grokscope.train(tiny_config(train={"steps": 40}), tmp_path / "run", progress=False, log="tensorboard")
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "train"))
    acc.Reload()
    events = acc.Scalars("metrics/test_loss")
    assert [e.step for e in events] == run.metrics["step"].tolist()
    np.testing.assert_allclose([e.value for e in events], run.metrics["test_loss"], rtol=1e-6)

    w = Watch(run.path, ["weights"], out=tmp_path / "live", batch=2, log="tensorboard")
    while w.poll():
        pass                                               # newest first: the steps arrive out of order
    w.finish()
    acc = EventAccumulator(str(tmp_path / "live" / "tensorboard" / "analyze"), size_guidance={"images": 0})
    acc.Reload()
    norms = {e.step: e.value for e in acc.Scalars("weights/weight_norm")}
    assert sorted(norms) == run.steps
    assert norms[run.steps[-1]] == pytest.approx(run.metrics["weight_norm"][-1], rel=1e-5)
    assert "figures/weights" in acc.Tags()["images"]


def test_a_recorder_analyzes_the_users_loop_as_it_trains(tmp_path, monkeypatch):
    import torch
    from helpers import ROOT
    from torch import nn
    from user_models import HOOKS, Plain

    from grokscope.external.recorder import Recorder

    # the watcher process finds the user's model class where the user's script would
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    torch.manual_seed(0)
    model = Plain()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    rec = Recorder(tmp_path / "own", model, task={"name": "modular", "p": 11, "frac_train": 0.5}, steps=40,
                   hooks=HOOKS, analyze="weights,fourier", analysis_out=tmp_path / "an")
    x, y = rec.task.train_inputs, rec.task.train_labels
    for step in range(41):
        loss = nn.functional.cross_entropy(model(x), y)
        if rec.wants(step):
            rec.checkpoint(step, model)
        rec.log(step, train_loss=loss)
        if step < 40:
            opt.zero_grad()
            loss.backward()
            opt.step()
    run = rec.finish()
    assert rec.report == tmp_path / "an" / "report.html" and rec.report.exists()
    assert "analyzing here" not in (tmp_path / "an" / "watch.log").read_text()   # the watcher did it
    entries = json.loads((tmp_path / "an" / "manifest.json").read_text())["probes"]
    assert entries["weights"]["n_ok"] == entries["fourier"]["n_ok"] == len(run.steps)

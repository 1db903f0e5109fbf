"""A diverging run stops at the step its loss stops being finite, says so in one line and in
run.json, keeps only finite weights, and the report and sweeps claim nothing the numbers cannot
support."""

import json
import re

import numpy as np
import pytest
import torch
from helpers import cli, tiny_config, toy

from grokscope.analysis import analyze
from grokscope.experiments.sweep import sweep
from grokscope.files import load_tensors
from grokscope.store import load_run
from grokscope.training import TrainingDiverged, ensure_trained, train
from grokscope.training.stacked import train_many


def test_a_diverging_run_stops_and_says_where_and_why(tmp_path, tally):
    config = tiny_config(optim={"lr": 1e6}, train={"steps": 200})
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+ \(train loss nan\); lower optim.lr"):
        train(config, tmp_path / "r", progress=False)
    run = load_run(tmp_path / "r")
    step = run.info["diverged_at_step"]
    assert run.status == "diverged" and 0 < step < 10
    m = run.metrics
    assert m["step"][-1] == step and np.isnan(m["train_loss"][-1]) and np.isfinite(m["train_loss"][:-1]).all()
    assert max(run.steps) < step                     # no checkpoint of non-finite weights
    for s in run.steps:
        assert all(torch.isfinite(t).all() for t in load_tensors(run.checkpoint_path(s))[0].values())
    with pytest.raises(TrainingDiverged, match="resuming would diverge again"):
        train(config, tmp_path / "r", resume=True, progress=False)
    assert ensure_trained(config, tmp_path / "r").status == "diverged"   # a sweep skips it
    # the CLI: one line, exit 1; the report says where it diverged and claims no key frequencies
    r = cli("train", "--preset", "quickstart", "--set", "optim.lr=1e6", "--set", "task.p=13",
            "--set", "train.steps=50", "--out", tmp_path / "q", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "diverged at step" in r.stderr
    analyze(tmp_path / "q", out=tmp_path / "a", progress=False)
    summary = (tmp_path / "a" / "report.md").read_text().split("## Training curves")[0]
    assert "The run diverged at step" in summary
    assert not re.search(r"\bnan\b", summary) and "Key frequencies" not in summary and "Phases" not in summary
    tally["diverging runs stopped"] += 2


def test_a_stacked_group_stops_only_its_diverging_run(tmp_path, tally):
    good, bad = toy(60, **{"optim.lr": "1e-3"}), toy(60, **{"optim.lr": "1e30", "optim.weight_decay": "1", "train.seed": 1})
    runs = train_many([good, bad], [tmp_path / "good", tmp_path / "bad"])
    assert [r.status for r in runs] == ["complete", "diverged"]
    train(good, tmp_path / "alone", progress=False)
    # the diverged member leaves the other's trajectory alone (equal to float32 rounding, as stacking is)
    np.testing.assert_allclose(load_run(tmp_path / "good").metrics["test_loss"],
                               load_run(tmp_path / "alone").metrics["test_loss"], rtol=1e-5)
    tally["diverging runs stopped"] += 1


@pytest.mark.parametrize("vectorize", ["never", "always"])
def test_sweeps_mark_diverged_cells(tmp_path, vectorize, tally):
    out = sweep("liu-toy", ["optim.lr=1e-3,1e30"], overrides=["train.steps=60", "optim.weight_decay=1"], out=tmp_path / "s",
                jobs=1, vectorize=vectorize, progress=False)
    phases = (out / "phases.csv").read_text()
    assert ",diverged," in phases and (out / "phase_diagram.png").exists()
    assert "| diverged | 1 |" in (out / "report.md").read_text()
    statuses = {p.name: json.loads((p / "run.json").read_text())["status"] for p in (out / "runs").iterdir()}
    assert sorted(statuses.values()) == ["complete", "diverged"]
    tally["diverging runs stopped"] += 1

"""`train.stop_after`: stop a set number of steps after the run generalizes (off by default)."""

import json

import pytest
from helpers import TEACHER_STUDENT_FAST, cli

from grokscope.config import load_preset, with_overrides
from grokscope.errors import UsageError
from grokscope.training.loop import train
from grokscope.training.stacked import train_many


def config(*extra):
    return with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + list(extra))


def test_a_run_stops_n_steps_after_it_generalizes(tmp_path):
    run = train(config("train.stop_after=20", "train.log_every=1"), tmp_path / "r", progress=False)
    gen = run.generalization_step
    assert gen is not None and run.status == "complete"
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["stopped_early_at"] == gen + 20 == int(run.metrics["step"][-1])
    assert run.steps[-1] == gen + 20  # the last step has a checkpoint
    full = train(config("train.log_every=1"), tmp_path / "full", progress=False)
    assert int(full.metrics["step"][-1]) == 300 and "stopped_early_at" not in full.info  # off by default
    assert full.generalization_step == gen  # the same run up to there
    r = cli("info", tmp_path / "r")
    assert "stopped 20 steps after generalizing (train.stop_after)" in r.stdout


def test_stacked_runs_stop_when_all_have_generalized(tmp_path):
    runs = train_many([config("train.stop_after=15", f"train.seed={s}") for s in (0, 1)],
                      [tmp_path / "a", tmp_path / "b"], progress=False)
    last = max(r.generalization_step for r in runs) + 15
    for r in runs:
        assert r.status == "complete" and int(r.metrics["step"][-1]) == last and r.steps[-1] == last


def test_a_negative_stop_after_is_refused():
    with pytest.raises(UsageError, match="train.stop_after must be >= 0"):
        train(config("train.stop_after=-1"), "/nonexistent/never-written", progress=False)

"""Branches: a run forked from a stored checkpoint with one thing changed (`train --from
RUN@STEP`), recording its parent and fork step, on the parent's split, with a fresh optimizer."""

import json

import numpy as np
import pytest
from helpers import cli

from grokscope.errors import UsageError
from grokscope.store import Run
from grokscope.training import branch


def test_a_control_branch_starts_where_the_parent_was(tiny_run, tmp_path):
    control = branch(tiny_run.path, 40, tmp_path / "control", progress=False)
    info = control.info
    assert info["parent"] == str(tiny_run.path.resolve()) and info["fork_step"] == 40
    assert control.config.train == tiny_run.config.train and control.config.optim == tiny_run.config.optim
    m, p = control.metrics, tiny_run.metrics
    assert int(m["step"][0]) == 40 and int(m["step"][-1]) == 120
    at40 = int(np.flatnonzero(p["step"] == 40)[0])
    # the same weights on the same split: the same losses at the fork step, to the last bit
    for col in ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"):
        assert m[col][0] == p[col][at40], col
    assert json.loads((control.path / "split.json").read_text())["train_indices"] == \
        json.loads((tiny_run.path / "split.json").read_text())["train_indices"]
    # a fresh optimizer: Adam's first steps differ from the parent's continued ones
    assert m["train_loss"][1] != p["train_loss"][at40 + 1]


def test_an_intervention_branch_changes_only_what_it_sets(tiny_run, tmp_path):
    r = cli("train", "--from", f"{tiny_run.path}@40", "--set", "optim.weight_decay=0", "--out", tmp_path / "b",
            "--quiet")
    assert r.returncode == 0, r.stderr
    b = Run(tmp_path / "b")
    assert b.config.optim.weight_decay == 0 and b.config.optim.lr == tiny_run.config.optim.lr
    assert b.info["fork_step"] == 40 and b.status == "complete"
    # again: the complete branch is kept, not trained again
    again = branch(tiny_run.path, 40, tmp_path / "b", ["optim.weight_decay=0"], progress=False)
    assert again.metrics["train_loss"].tolist() == b.metrics["train_loss"].tolist()
    with pytest.raises(UsageError, match="another config"):
        branch(tiny_run.path, 40, tmp_path / "b", ["optim.weight_decay=0.5"], progress=False)


def test_bad_forks_are_one_line(tiny_run, tmp_path):
    for args, words in ((["--from", f"{tiny_run.path}@41"], "no checkpoint at step 41"),
                        (["--from", f"{tiny_run.path}"], "--from expects RUN_DIR@STEP"),
                        (["--from", f"{tiny_run.path}@40", "--set", "train.steps=30"], "at or after its last step"),
                        (["--from", f"{tiny_run.path}@40", "--preset", "nanda"], "drop --preset")):
        r = cli("train", *args, "--out", tmp_path / "x", "--quiet")
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()

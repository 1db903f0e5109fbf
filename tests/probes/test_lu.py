"""The lu probe places a run on an Omnigrok landscape."""

import json

import pytest
from helpers import TEACHER_STUDENT_FAST

from grokscope.analysis import analyze
from grokscope.config import load_preset, with_overrides
from grokscope.experiments.landscape import landscape
from grokscope.tables import read_table
from grokscope.training import train


def test_lu_probe_places_a_run_on_the_landscape(tmp_path):
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST)
    landscape(config, [0.5, 1.0, 2.0], tmp_path / "ls", jobs=1, progress=False)
    run = train(with_overrides(load_preset("teacher-student-grok"), TEACHER_STUDENT_FAST), tmp_path / "run", progress=False)
    tables = analyze(run, ["lu"], out=tmp_path / "a", every=100, params={"lu": {"landscape": str(tmp_path / "ls")}},
                     progress=False)
    lu = tables["lu"]
    assert lu["norm_scale"][0] == pytest.approx(2.0, rel=1e-5)  # init x2
    land = read_table(tmp_path / "ls" / "landscape.csv")
    assert lu["landscape_test_loss"][0] == pytest.approx(land["best_test_loss"][2], rel=1e-4)
    assert (tmp_path / "a" / "figures" / "lu.png").exists()
    skipped = analyze(run, ["lu"], out=tmp_path / "b", every=100, progress=False, report=False)
    assert skipped == {}
    entry = json.loads((tmp_path / "b" / "manifest.json").read_text())["probes"]["lu"]
    assert entry["status"] == "skipped" and "grokscope landscape" in entry["reason"]
    # a damaged landscape table: the probe fails with a one-line reason naming it; the rest goes on
    (tmp_path / "ls" / "landscape.csv").write_text("scale,norm\n1,2,3,4\n")
    analyze(run, ["lu", "weights"], out=tmp_path / "c", every=100,
            params={"lu": {"landscape": str(tmp_path / "ls")}}, progress=False)
    entries = json.loads((tmp_path / "c" / "manifest.json").read_text())["probes"]
    assert entries["weights"]["status"] == "ok" and entries["lu"]["status"] == "failed"
    assert "landscape.csv line 2 has 4 cells for 2 columns" in entries["lu"]["reason"]
    assert "\n" not in entries["lu"]["reason"] and (tmp_path / "c" / "report.html").exists()

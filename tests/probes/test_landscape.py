"""The landscape probe places a run on an Omnigrok landscape."""

import json

import pytest
from helpers import TEACHER_STUDENT_FAST

from grokscope.analysis import analyze
from grokscope.config import load_preset, with_overrides
from grokscope.experiments.landscape import landscape
from grokscope.tables import read_table
from grokscope.training import train


def test_landscape_probe_places_a_run_on_the_landscape(tmp_path):
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST)
    landscape(config, [0.5, 1.0, 4.0], tmp_path / "ls", jobs=1, progress=False)
    run = train(with_overrides(load_preset("teacher-student-grok"), TEACHER_STUDENT_FAST), tmp_path / "run", progress=False)
    tables = analyze(run, ["landscape"], out=tmp_path / "a", every=100, params={"landscape": {"dir": str(tmp_path / "ls")}},
                     progress=False)
    lu = tables["landscape"]
    assert lu["norm_scale"][0] == pytest.approx(4.0, rel=1e-5)  # init x4
    land = read_table(tmp_path / "ls" / "landscape.csv")
    assert lu["landscape_test_loss"][0] == pytest.approx(land["best_test_loss"][2], rel=1e-4)
    assert (tmp_path / "a" / "figures" / "landscape.png").exists()
    skipped = analyze(run, ["landscape"], out=tmp_path / "b", every=100, progress=False, report=False)
    assert skipped == {}
    entry = json.loads((tmp_path / "b" / "manifest.json").read_text())["probes"]["landscape"]
    assert entry["status"] == "skipped" and "grokscope landscape" in entry["reason"]
    # a damaged landscape table: the probe fails with a one-line reason naming it; the rest goes on
    (tmp_path / "ls" / "landscape.csv").write_text("scale,norm\n1,2,3,4\n")
    analyze(run, ["landscape", "weights"], out=tmp_path / "c", every=100,
            params={"landscape": {"dir": str(tmp_path / "ls")}}, progress=False)
    entries = json.loads((tmp_path / "c" / "manifest.json").read_text())["probes"]
    assert entries["weights"]["status"] == "ok" and entries["landscape"]["status"] == "failed"
    assert "landscape.csv line 2 has 4 cells for 2 columns" in entries["landscape"]["reason"]
    assert "\n" not in entries["landscape"]["reason"] and (tmp_path / "c" / "report.html").exists()


def test_the_old_name_and_parameter_select_the_same_probe(tmp_path):
    """`--probe lu --param lu.landscape=DIR` (the probe's earlier name) computes the same table."""
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST)
    landscape(config, [0.5, 1.0, 2.0], tmp_path / "ls", jobs=1, progress=False)
    run = train(with_overrides(load_preset("teacher-student-grok"), TEACHER_STUDENT_FAST), tmp_path / "run",
                progress=False)
    new = analyze(run, ["landscape"], out=tmp_path / "new", every=400,
                  params={"landscape": {"dir": str(tmp_path / "ls")}}, progress=False, report=False)
    old = analyze(run, ["lu"], out=tmp_path / "old", every=400, params={"lu": {"landscape": str(tmp_path / "ls")}},
                  progress=False, report=False)
    assert set(old) == {"landscape"}
    assert (tmp_path / "old" / "landscape.csv").read_bytes() == (tmp_path / "new" / "landscape.csv").read_bytes()

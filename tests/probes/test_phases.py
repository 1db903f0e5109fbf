"""phases: the run-level result is `measures.transitions.locate_phases` on the run's own metrics
(and the progress table when there is one)."""

from grokscope.analysis import analyze
from grokscope.measures.transitions import locate_phases
from grokscope.tables import read_result


def test_the_phases_are_locate_phases_on_the_runs_metrics(tiny_run, tmp_path):
    out = tmp_path / "ph"
    analyze(tiny_run, ["phases"], out=out, every=60, progress=False, report=False)
    got = read_result(out, "phases")
    want = locate_phases(tiny_run.metrics)
    assert got["memorization_step"] == want["memorization_step"] is not None
    assert got["generalization_step"] == want["generalization_step"]
    assert [p["name"] for p in got["phases"]] == [p["name"] for p in want["phases"]]
    assert [(p["start"], p["end"]) for p in got["phases"]] == [(p["start"], p["end"]) for p in want["phases"]]

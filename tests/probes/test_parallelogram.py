"""The parallelogram probe on a trained transformer."""

from helpers import tiny_config

from grokscope.analysis import analyze
from grokscope.training import train


def test_probe_runs_on_the_transformer(tmp_path):
    run = train(tiny_config(train={"steps": 20}), tmp_path / "r", progress=False)
    tables = analyze(run, ["parallelogram"], out=tmp_path / "a", every=10, progress=False, report=False)
    t = tables["parallelogram"]
    assert {"rqi", "parallelogram_loss", "predicted_accuracy"} <= set(t)
    assert ((t["rqi"] >= 0) & (t["rqi"] <= 1)).all()


# ------------------------------------------------------------------ critical fraction

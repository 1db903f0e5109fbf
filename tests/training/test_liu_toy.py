"""liu-toy reproduces Liu et al.'s default run step for step."""

import numpy as np

from grokscope.analysis import analyze
from grokscope.training import train


def test_liu_toy_reproduces_the_authors_default_run(tmp_path):
    """Seed 58: the authors report train acc >= 0.9 at step 1,130 and test acc >= 0.9 at 1,530
    (their step s is logged after update s + 1 for train, before it for test)."""
    from grokscope.config import load_preset, with_overrides
    from grokscope.store import load_run

    config = with_overrides(load_preset("liu-toy"), ["train.steps=1600", "checkpoint.every=100"])
    run = load_run(train(config, tmp_path / "liu", progress=False).path)
    m = run.metrics
    assert len(run.task.train_indices) == 45 and len(run.task.test_indices) == 10
    first = lambda col: int(m["step"][np.argmax(m[col] >= 0.9)])
    assert abs(first("train_acc") - 1131) <= 3
    assert abs(first("test_acc") - 1530) <= 3
    tables = analyze(run, ["parallelogram"], out=tmp_path / "a", progress=False,
                     report=False)
    t = tables["parallelogram"]
    assert t["rqi"][0] < 0.2 and t["rqi"][-1] == 1.0
    assert t["predicted_accuracy"][-1] == 1.0
    assert t["parallelogram_loss"][-1] < 0.01 * t["parallelogram_loss"][0]

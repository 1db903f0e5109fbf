import pytest

from grokscope import load_preset, train


@pytest.mark.slow
def test_quickstart_groks(tmp_path):
    """The README's promise: memorize first, then generalize after a clearly visible delay."""
    run = train(load_preset("quickstart"), tmp_path / "q", progress=False)
    m = run.metrics
    mem, gen = run.memorization_step, run.generalization_step
    assert mem is not None and gen is not None
    assert mem < 200 and gen - mem > 1000
    assert m["train_acc"][-1] == 1.0 and m["test_acc"][-1] >= 0.99
    at_memorization = m["test_acc"][m["step"] == mem][0]
    assert at_memorization < 0.5  # memorized, not generalized
    assert int(m["step"][-1]) == gen + 400 == run.info["stopped_early_at"]  # train.stop_after = 400

"""kumar_stats: the committee machine's test loss against a forward pass written here, and the
error terms those of `measures.kumar` on the checkpoint's first-layer weights (the measure itself
is tested against its analytic cases in tests/measures/test_kumar.py)."""

import pytest
import torch
from helpers import kumar_config

from grokscope.analysis import analyze
from grokscope.measures.kumar import beta_alignment, kumar_error_terms
from grokscope.training import train


def test_the_test_loss_is_a_forward_pass_and_the_terms_those_of_the_measure(tmp_path):
    run = train(kumar_config(), tmp_path / "k", progress=False)
    t = analyze(run, ["kumar_stats"], out=tmp_path / "a", count=3, progress=False, report=False)["kumar_stats"]
    assert len(t["step"]) >= 2
    for i, step in enumerate(t["step"]):
        model = run.model(int(step))
        with torch.no_grad():
            pred = model(run.task.test_inputs).double()
        assert t["test_loss"][i] == pytest.approx(float((pred - run.task.test_labels.double()).pow(2).mean()),
                                                  rel=1e-9)
        W = model.blocks[0].mlp.W_in.detach()
        terms = kumar_error_terms(W, model.init_W, run.task.beta, model.alpha, model.eps, model.centered)
        for name, value in terms.items():
            assert t[name][i] == pytest.approx(value, rel=1e-9), name
        assert t["beta_alignment"][i] == pytest.approx(beta_alignment(W, run.task.beta), rel=1e-9)

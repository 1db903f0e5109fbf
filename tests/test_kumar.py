"""Kumar et al. 2024's toy: the polynomial task, the committee machine, its NTK and its error terms."""

import math

import pytest
import torch

from grokscope.config import load_preset, with_overrides
from grokscope.errors import UsageError
from grokscope.models import build_model
from grokscope.measures.ntk import committee_ntk, empirical_ntk, ntk_reference
from grokscope.measures.kumar import kumar_error_terms
from grokscope.tasks import build_task
from grokscope.training import train


def _config(*extra):
    return with_overrides(load_preset("kumar"), ["task.d_input=12", "task.n_train=40", "task.n_test=30",
                                                 "model.hidden=16", "optim.lr=16", "train.steps=50", *extra])


def test_polynomial_task():
    task = build_task(_config())
    assert task.train_inputs.shape == (40, 12) and task.test_inputs.shape == (30, 12)
    assert task.is_regression and task.train_labels.dtype == torch.float32
    x, beta = task.all_inputs.double(), task.beta
    torch.testing.assert_close(task.all_labels.double(), 0.5 * (x @ beta) ** 2, rtol=1e-6, atol=1e-6)
    big = build_task(with_overrides(load_preset("kumar"), ["task.n_test=20000"]))
    assert big.test_inputs.double().pow(2).sum(1).mean() == pytest.approx(1.0, rel=0.02)  # x ~ N(0, I/D)


def test_committee_output_and_centering():
    config = _config("model.centered=false", "model.alpha=2")
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task).double()
    x = task.train_inputs.double()
    W = model.blocks[0].mlp.W_in
    h = x @ W
    expected = 2.0 / 16 * (h + 0.5 * 0.02 * h ** 2).sum(1)
    torch.testing.assert_close(model(x), expected)
    centered = build_model(_config(), task)
    assert centered(task.train_inputs).abs().max() == 0  # f - f_0 starts at zero


@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_committee_ntk_closed_form_equals_reference(alpha):
    config = _config(f"model.alpha={alpha}")
    task = build_task(config)
    model = build_model(config, task)
    with torch.no_grad():
        model.blocks[0].mlp.W_in.add_(0.1 * torch.randn_like(model.blocks[0].mlp.W_in))
    x = task.train_inputs[:15]
    ref = ntk_reference(model, x, "scalar")
    torch.testing.assert_close(empirical_ntk(model, x, "scalar"), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(model, x, "scalar", method="jacobian"), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(committee_ntk(model.double(), x, task.test_inputs[:4]),
                               ntk_reference(model, torch.cat([x, task.test_inputs[:4]]), "scalar")[:15, 15:],
                               rtol=1e-10, atol=1e-12)


def test_error_terms_sum_to_the_test_loss():
    """The three terms are the exact expected loss; compare with a large Monte-Carlo test set."""
    config = with_overrides(load_preset("kumar"), ["task.d_input=20", "task.n_test=200000", "model.hidden=50",
                                                   "model.alpha=1"])
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task).double()
    with torch.no_grad():  # a trained-looking state: part linear error, part quadratic
        W = model.blocks[0].mlp.W_in
        W.add_(0.3 * torch.randn_like(W) + 2.0 * task.beta[:, None] * torch.randn(1, W.shape[1], dtype=W.dtype))
    terms = kumar_error_terms(model.blocks[0].mlp.W_in, model.init_W, task.beta, 1.0, model.eps)
    with torch.no_grad():
        err = model(task.test_inputs.double()) - task.test_labels.double()
    mc, se = float(err.pow(2).mean()), float(err.pow(2).std()) / math.sqrt(len(err))
    assert all(terms[k] > 0 for k in ("error_linear", "error_misalignment", "error_variance"))
    assert terms["predicted_test_loss"] == pytest.approx(mc, abs=4 * se)


def test_regression_training_and_bad_combinations(tmp_path):
    run = train(_config("train.steps=200", "train.log_every=1"), tmp_path / "k", progress=False)
    m = run.metrics
    assert torch.isnan(torch.tensor(m["train_acc"])).all()
    assert m["train_loss"][-1] < m["train_loss"][0]
    with pytest.raises(UsageError, match="regression: set train.loss=mse"):
        train(_config("train.loss=cross_entropy"), tmp_path / "x", progress=False)
    with pytest.raises(UsageError, match="has real-valued inputs; use model.name=mlp"):
        train(_config("model.name=transformer"), tmp_path / "y", progress=False)

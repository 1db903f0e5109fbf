"""Kumar et al.'s error decomposition (measures.kumar) against a Monte Carlo test loss."""

import math

import pytest
import torch

from grokscope.config import load_preset, with_overrides
from grokscope.measures.kumar import kumar_error_terms
from grokscope.models import build_model
from grokscope.tasks import build_task


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

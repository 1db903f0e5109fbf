
import numpy as np
import pytest
import torch
from helpers import kumar_config, tiny_config

from grokscope.measures.ntk import (
    committee_ntk,
    effective_rank,
    empirical_ntk,
    ntk_matvec,
    ntk_reference,
    ntk_top_eigenvalues,
)
from grokscope.models import build_model
from grokscope.tasks import build_task

MODELS = {
    "transformer": {},
    "transformer-2l-ln": {"n_layers": 2, "layernorm": True},
    "mlp-onehot": {"name": "mlp", "hidden": (12, 10), "d_embed": 0},
    "mlp-embed": {"name": "mlp", "hidden": (12,), "d_embed": 5, "act": "gelu"},
    "mlp-square-nobias": {"name": "mlp", "hidden": (16,), "act": "square", "bias": False},
    "mlp-centered": {"name": "mlp", "hidden": (12,), "d_embed": 4, "centered": True, "alpha": 3.0},
}


def _setup(kind, n=9):
    cfg = tiny_config(task={"p": 7}, model={"d_model": 8, "n_heads": 2, "d_head": 4, "d_mlp": 12, **MODELS[kind]})
    task = build_task(cfg)
    torch.manual_seed(1)
    model = build_model(cfg, task)
    with torch.no_grad():
        for p in model.parameters():  # move away from init so every term matters
            p.add_(0.3 * torch.randn_like(p))
    return model, task.all_inputs[:n], task.all_labels[:n]


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("output", ["trace", "correct", 2])
def test_ntk_equals_the_slow_reference(kind, output):
    model, x, y = _setup(kind)
    ref = ntk_reference(model, x, output, labels=y)
    K = empirical_ntk(model, x, output, labels=y)
    torch.testing.assert_close(K, ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))
    if kind.startswith("mlp"):  # the layer-wise form and the Jacobian path agree as well
        J = empirical_ntk(model, x, output, labels=y, method="jacobian")
        torch.testing.assert_close(J, ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))


def test_cross_kernel_and_chunking():
    model, x, y = _setup("mlp-embed", n=12)
    full = ntk_reference(model, x, "trace")
    cross = empirical_ntk(model, x[:5], "trace", inputs2=x[5:])
    torch.testing.assert_close(cross, full[:5, 5:], rtol=1e-10, atol=1e-10)
    model_t, xt, _ = _setup("transformer", n=12)
    tiny_chunks = empirical_ntk(model_t, xt, "trace", memory_mb=0.05)
    torch.testing.assert_close(tiny_chunks, ntk_reference(model_t, xt, "trace"), rtol=1e-10, atol=1e-9)


def test_matvec_and_lanczos_match_dense():
    model, x, y = _setup("transformer", n=20)
    K = empirical_ntk(model, x, "correct", labels=y)
    v = torch.randn(20, dtype=torch.float64)
    torch.testing.assert_close(ntk_matvec(model, x, "correct", labels=y)(v), K @ v, rtol=1e-10, atol=1e-9)
    top = ntk_top_eigenvalues(model, x, 4, "correct", labels=y)
    np.testing.assert_allclose(top, torch.linalg.eigvalsh(K).flip(0)[:4].numpy(), rtol=1e-8)
    model, x, _ = _setup("mlp-onehot", n=15)
    top = ntk_top_eigenvalues(model, x, 3, "trace")
    np.testing.assert_allclose(top, torch.linalg.eigvalsh(empirical_ntk(model, x)).flip(0)[:3].numpy(), rtol=1e-8)


def test_effective_rank():
    assert effective_rank(np.ones(7)) == pytest.approx(7.0)
    assert effective_rank(np.array([5.0, 0, 0])) == pytest.approx(1.0)



@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_committee_ntk_closed_form_equals_reference(alpha):
    config = kumar_config(f"model.alpha={alpha}")
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

"""The MLP's three initializations against what they claim to be."""

import torch
from torch import nn

from grokscope.models.mlp import MLP


def test_torch_init_draws_what_nn_linear_draws():
    """Omnigrok's alpha multiplies PyTorch's default init: the same distribution per parameter
    (U(+-1/sqrt(fan_in)) for weights and biases), hence MNIST's initial norm of about 11.7."""
    torch.manual_seed(0)
    ours = MLP(1, 10, 1, hidden=(200, 200), init="torch", d_input=784)
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
    fan_in = {"blocks.0.mlp": 784, "blocks.1.mlp": 200, "unembed": 200}
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        bound = fan_in[name.rsplit(".", 1)[0]] ** -0.5
        assert p.numel() == q.numel() and p.abs().max() <= bound and q.abs().max() <= bound, name
        assert abs(p.std().item() - q.std().item()) < 0.1 * q.std().item(), name   # same distribution
    norm = lambda m: torch.cat([p.flatten() for p in m.parameters()]).norm().item()
    assert abs(norm(ours) - norm(ref)) < 0.02 * norm(ref) and 11.0 < norm(ours) < 12.5
    torch.manual_seed(0)
    assert abs(norm(MLP(1, 10, 1, hidden=(200, 200), init="torch", init_scale=8.0, d_input=784)) - 8 * norm(ours)) < 1e-3


def test_fan_in_init_is_the_standard_parameterization():
    torch.manual_seed(0)
    m = MLP(1, 10, 1, hidden=(400,), d_input=900)
    assert abs(m.blocks[0].mlp.W_in.std().item() - 1 / 30) < 1e-3 and m.blocks[0].mlp.b_in.abs().max() == 0

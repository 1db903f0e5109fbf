"""Kumar et al. 2024's committee machine (section 5), with TransformerLens hook names.

f(x) = alpha / N * sum_i phi(w_i . x), phi(h) = h + eps/2 h^2, w_i ~ N(0, I), readouts fixed at 1.
With `centered`, the output is f(x; W) - f(x; W_0), which starts at zero whatever alpha is; W_0 is
kept as the persistent buffer `init_W` so a checkpoint reproduces f on its own. Trained with
full-batch gradient descent at lr = eta_0 N / alpha^2 (`optim.lr = eta_0 * N`, `model.alpha_lr`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.models import register_model


class _Layer(nn.Module):
    def __init__(self, d_input: int, width: int):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_input, width))  # column i is w_i
        self.hook_pre = HookPoint()   # (batch, N): w_i . x
        self.hook_post = HookPoint()  # (batch, N): phi(w_i . x)


class _Block(nn.Module):
    def __init__(self, d_input: int, width: int):
        super().__init__()
        self.mlp = _Layer(d_input, width)


class Committee(HookedRootModule):
    """inputs (batch, D) float -> outputs (batch,)."""

    ntk_method = "closed_form"  # measures.ntk.CommitteeModel: the NTK in closed form

    def __init__(self, d_input: int, width: int = 500, *, alpha: float = 1.0, eps: float = 0.02,
                 centered: bool = True, init_scale: float = 1.0):
        super().__init__()
        self.width, self.alpha, self.eps, self.centered = width, alpha, eps, centered
        self.blocks = nn.ModuleList([_Block(d_input, width)])
        with torch.no_grad():
            self.blocks[0].mlp.W_in.normal_(0.0, init_scale)
        self.register_buffer("init_W", self.blocks[0].mlp.W_in.detach().clone())
        self.setup()

    def phi(self, h: Tensor) -> Tensor:
        return h + 0.5 * self.eps * h * h

    def phi_prime(self, h: Tensor) -> Tensor:
        return 1.0 + self.eps * h

    def _f(self, x: Tensor, W: Tensor, hooked: bool) -> Tensor:
        layer = self.blocks[0].mlp
        h = x @ W
        if hooked:
            h = layer.hook_pre(h)
        post = self.phi(h)
        if hooked:
            post = layer.hook_post(post)
        return self.alpha / self.width * post.sum(-1)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.blocks[0].mlp.W_in.dtype)
        out = self._f(x, self.blocks[0].mlp.W_in, hooked=True)
        if self.centered:
            with torch.no_grad():
                out0 = self._f(x, self.init_W, hooked=False)
            out = out - out0
        return out


@register_model("committee", stackable=True)
def _build(config, task) -> Committee:
    from grokscope.errors import UsageError

    if task.name != "polynomial":
        raise UsageError("model.name=committee needs task.name=polynomial")
    m = config.model
    return Committee(task.all_inputs.shape[1], m.hidden[0], alpha=m.alpha, eps=m.eps, centered=m.centered,
                     init_scale=m.init_scale)

"""Liu et al. 2022's toy model: learnable symbol embeddings, combined by a fixed rule, then an MLP
decoder (their `toy/train_add.py`: `DEC` and `NET`).

    E_a, E_b = embed.W_E[a], embed.W_E[b]          # (d_embed,) each, init uniform(-1/2, 1/2)
    h = E_a + E_b            (compose = "sum", addition)
    h = E_a @ E_b            (compose = "matmul", S_n: d_embed = k^2, k x k matrices)
    out = decoder(h)         # hidden layers (default 2 x 200, tanh), then a readout

Initialisation reproduces theirs draw for draw from the same torch seed: the embedding
`torch.rand(p, d) - 1/2` first, then each layer as `nn.Linear` (weight then bias, both
uniform(+-1/sqrt(fan_in))), so seed 58 starts where the authors' default run starts. Their
phase-diagram notebooks draw in another order (`unused_encoder`): an encoder MLP they never use
(input templates -> hidden -> d_embed), then the decoder, then the embedding (times
`embed_scale`: 0.1 in their S3 notebook).
Hook names follow the MLP model: `hook_embed` (batch, 2, d_embed), `hook_combined` (batch,
d_embed), `blocks.{i}.mlp.hook_pre` / `hook_post`, `hook_logits`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.errors import UsageError
from grokscope.models import register_model
from grokscope.models.mlp import Block, Readout

COMPOSE = ("sum", "matmul")


class Toy(HookedRootModule):
    """operand ids (batch, 2) int64 -> (batch, n_out)."""

    def __init__(self, n_symbols: int, n_out: int, *, d_embed: int = 1,
                 hidden: tuple[int, ...] = (200, 200), act: str = "tanh",
                 compose: str = "sum", init_scale: float = 1.0, embed_scale: float = 1.0,
                 unused_encoder: tuple[int, ...] = ()):
        super().__init__()
        if compose not in COMPOSE:
            raise UsageError(f"unknown model.compose {compose!r}; choose one of {', '.join(COMPOSE)}")
        if d_embed < 1:
            raise UsageError(f"model.toy needs model.d_embed >= 1 (Liu et al. use 1), got {d_embed}")
        self.k = math.isqrt(d_embed)
        if compose == "matmul" and self.k * self.k != d_embed:
            raise UsageError(f"compose=matmul needs a square model.d_embed (9 for 3x3 matrices), got {d_embed}")
        self.compose = compose
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.empty(n_symbols, d_embed))
        self.hook_embed = HookPoint()
        self.hook_combined = HookPoint()
        widths = (d_embed, *hidden)
        self.blocks = nn.ModuleList(Block(widths[i], widths[i + 1], act, True)
                                    for i in range(len(hidden)))
        self.unembed = Readout(widths[-1], n_out, True)
        self.hook_logits = HookPoint()
        self.reset_parameters(init_scale, embed_scale, unused_encoder)
        self.setup()

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0, embed_scale: float = 1.0,
                         unused_encoder: tuple[int, ...] = ()) -> None:
        """`unused_encoder` (widths, input first): draw such an MLP first and throw it away, then
        the decoder before the embedding, as the authors' phase-diagram notebooks do."""
        def embedding():
            self.embed.W_E.copy_((torch.rand(self.embed.W_E.shape) - 0.5) * init_scale * embed_scale)

        if not unused_encoder:
            embedding()
        for fan_in, fan_out in zip(unused_encoder, unused_encoder[1:]):
            _linear_draw(fan_in, fan_out)
        layers = [(b.mlp.W_in, b.mlp.b_in) for b in self.blocks] + [(self.unembed.W_U, self.unembed.b_U)]
        for W, b in layers:
            weight, bias = _linear_draw(W.shape[0], W.shape[1])
            W.copy_(weight.T * init_scale)
            b.copy_(bias * init_scale)
        if unused_encoder:
            embedding()

    def forward(self, tokens: Tensor) -> Tensor:
        E = self.hook_embed(F.embedding(tokens[:, :2], self.embed.W_E))
        if self.compose == "sum":
            h = E[:, 0] + E[:, 1]
        else:
            k = self.k
            h = (E[:, 0].reshape(-1, k, k) @ E[:, 1].reshape(-1, k, k)).flatten(1)
        x = self.hook_combined(h)
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.unembed(x))


def _linear_draw(fan_in: int, fan_out: int) -> tuple[Tensor, Tensor]:
    """The (fan_out, fan_in) weight and the bias `nn.Linear` draws, in its order."""
    bound = 1.0 / math.sqrt(fan_in)
    weight = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
    return weight, torch.empty(fan_out).uniform_(-bound, bound)


@register_model("toy", stackable=True)
def _build(config, task) -> Toy:
    if not task.name.startswith("toy_"):
        raise UsageError("model.name=toy needs task.name=toy_add or toy_permutation")
    m = config.model
    n_out = task.targets.shape[1] if config.train.loss == "target_mse" else task.n_classes
    # the notebooks' unused encoder maps the input templates (addition: one per symbol; S3: a
    # scalar) to the embedding width
    n_in = task.vocab_size if task.name.startswith("toy_add") else 1
    unused = (n_in, *m.hidden, m.d_embed) if config.task.draws == "notebook" else ()
    return Toy(task.vocab_size, n_out, d_embed=m.d_embed, hidden=m.hidden, act=m.act, compose=m.compose,
               init_scale=m.init_scale, embed_scale=m.embed_scale, unused_encoder=unused)

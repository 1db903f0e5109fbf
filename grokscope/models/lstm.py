"""An LSTM over the `a b =` tokens (the recurrent baseline of "Exploring Grokking", arXiv
2412.10898: hidden size 20 on modular addition mod 97).

    x_t = embed.W_E[token_t]                       # hook_embed (batch, n_ctx, d_embed)
    h_1..h_T = LSTM(x_1..x_T)                       # hook_hidden (batch, n_ctx, d_hidden)
    logits = h_T @ unembed.W_U + unembed.b_U        # the answer is read at the `=` position

The LSTM is `torch.nn.LSTM` with PyTorch's default initialisation (uniform +-1/sqrt(d_hidden));
the embedding is N(0, 1) and the readout N(0, 1/d_hidden), all multiplied by `init_scale`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.models import register_model
from grokscope.models.mlp import Readout


class LSTM(HookedRootModule):
    """tokens (batch, n_ctx) int64 -> logits (batch, n_classes)."""

    def __init__(self, d_vocab: int, n_classes: int, *, d_embed: int = 20, d_hidden: int = 20,
                 n_layers: int = 1, init_scale: float = 1.0):
        super().__init__()
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.empty(d_vocab, d_embed))
        self.hook_embed = HookPoint()
        self.lstm = nn.LSTM(d_embed, d_hidden, num_layers=n_layers, batch_first=True)
        self.hook_hidden = HookPoint()
        self.unembed = Readout(d_hidden, n_classes, True)
        self.hook_logits = HookPoint()
        with torch.no_grad():
            self.embed.W_E.normal_(0.0, init_scale)
            self.unembed.W_U.normal_(0.0, init_scale / math.sqrt(d_hidden))
            self.unembed.b_U.zero_()
            if init_scale != 1.0:
                for p in self.lstm.parameters():
                    p.mul_(init_scale)
        self.setup()

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.hook_embed(F.embedding(tokens, self.embed.W_E))
        h, _ = self.lstm(x)
        h = self.hook_hidden(h)
        return self.hook_logits(self.unembed(h[:, -1]))


@register_model("lstm")
def _build(config, task) -> LSTM:
    m = config.model
    return LSTM(task.vocab_size, task.n_classes, d_embed=m.d_embed or m.d_model, d_hidden=m.d_model,
                n_layers=m.n_layers, init_scale=m.init_scale)

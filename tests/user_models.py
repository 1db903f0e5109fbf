"""A user's own model, as a separate file imports nothing of the tests (factories load it by path)."""

from torch import nn


class Plain(nn.Module):
    """Tokens (batch, 3) -> logits (batch, p); no grokscope names anywhere."""

    def __init__(self, p: int = 11, d: int = 8, hidden: int = 16):
        super().__init__()
        self.emb = nn.Embedding(p + 1, d)
        self.body = nn.Sequential(nn.Linear(2 * d, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, p)

    def forward(self, x):
        return self.out(self.body(self.emb(x[:, :2]).flatten(1)))


HOOKS = "embed=emb,unembed=out,hook_embed=emb,blocks.0.mlp.hook_post=body.1"

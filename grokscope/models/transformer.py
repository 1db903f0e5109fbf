"""A decoder-only transformer for `a b =` tasks, with TransformerLens hook names.

Nanda et al. (2023)'s shapes by default: one layer, no LayerNorm, d_model 128, 4 heads of 32,
ReLU MLP of 512 with biases (the only biases), learned positions, logits read at the last
position. Parameter names and shapes follow TransformerLens (`embed.W_E` is d_vocab x d_model,
`blocks.0.attn.W_Q` is n_heads x d_model x d_head, `blocks.0.attn.W_O` n_heads x d_head x d_model,
`unembed.W_U` d_model x n_classes).

Two ways to the same numbers:
- the plain path runs every position through every layer and calls every hook;
- the fast path (default, taken only when no hook is attached) computes what the answer
  position needs. In the last layer only the last position needs a query, the MLP and the
  unembedding. In a one-layer model without LayerNorm the keys and values of a position depend
  on its token only, so they come from a (vocab, position) table, and so does the last query.
`run_with_cache` / `run_with_hooks` therefore always see every position.

TransformerLens's own tools (activation patching in `transformer_lens.patching`, the
`ActivationCache` decompositions, logit attribution) read `cfg`, `to_tokens`,
`tokens_to_residual_directions` and `accumulated_bias`: the model has them, and `run_with_cache`
returns an `ActivationCache`. Its output is the logits at the answer position only, (batch,
n_classes), where a TransformerLens language model returns every position's.
"""

from __future__ import annotations

import math

import torch
from einops import einsum
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.models import register_model
from grokscope.models.activations import activation


class LayerNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()       # (batch, pos, 1)
        self.hook_normalized = HookPoint()  # (batch, pos, d_model)

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale * self.w + self.b)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, n_ctx: int):
        super().__init__()
        self.W_Q = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.W_K = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.W_V = nn.Parameter(torch.empty(n_heads, d_model, d_head))
        self.W_O = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool)),
                             persistent=False)
        self.scale = math.sqrt(d_head)
        self.hook_q = HookPoint()            # (batch, query_pos, head, d_head)
        self.hook_k = HookPoint()            # (batch, key_pos, head, d_head)
        self.hook_v = HookPoint()            # (batch, key_pos, head, d_head)
        self.hook_attn_scores = HookPoint()  # (batch, head, query_pos, key_pos)
        self.hook_pattern = HookPoint()      # (batch, head, query_pos, key_pos)
        self.hook_z = HookPoint()            # (batch, query_pos, head, d_head)

    def forward(self, x: Tensor, last_only: bool = False) -> Tensor:
        """x: (batch, pos, d_model) -> (batch, query_pos, d_model); query_pos is 1 if last_only."""
        x_q = x[:, -1:] if last_only else x
        q = self.hook_q(einsum(x_q, self.W_Q, "b p m, h m d -> b p h d"))
        k = self.hook_k(einsum(x, self.W_K, "b p m, h m d -> b p h d"))
        v = self.hook_v(einsum(x, self.W_V, "b p m, h m d -> b p h d"))
        scores = einsum(q, k, "b q h d, b k h d -> b h q k") / self.scale
        mask = self.mask[-x_q.shape[1]:, : x.shape[1]] if last_only else self.mask[: x.shape[1], : x.shape[1]]
        scores = self.hook_attn_scores(scores.masked_fill(~mask, float("-inf")))
        pattern = self.hook_pattern(scores.softmax(-1))
        z = self.hook_z(einsum(pattern, v, "b h q k, b k h d -> b q h d"))
        return einsum(z, self.W_O, "b q h d, h d m -> b q m")


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, act: str):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_model, d_mlp))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.empty(d_mlp, d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.act = activation(act)
        self.hook_pre = HookPoint()   # (batch, pos, d_mlp)
        self.hook_post = HookPoint()  # (batch, pos, d_mlp)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.hook_pre(x @ self.W_in + self.b_in)
        return self.hook_post(self.act(pre)) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int, n_ctx: int,
                 act: str, layernorm: bool):
        super().__init__()
        self.ln1 = LayerNorm(d_model) if layernorm else nn.Identity()
        self.attn = Attention(d_model, n_heads, d_head, n_ctx)
        self.ln2 = LayerNorm(d_model) if layernorm else nn.Identity()
        self.mlp = MLP(d_model, d_mlp, act)
        self.hook_resid_pre = HookPoint()   # (batch, pos, d_model)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: Tensor, last_only: bool = False) -> Tensor:
        resid = self.hook_resid_pre(resid)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid), last_only))
        resid = self.hook_resid_mid((resid[:, -1:] if last_only else resid) + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid)))
        return self.hook_resid_post(resid + mlp_out)


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(d_vocab, d_model))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.W_E.index_select(0, tokens.flatten()).view(*tokens.shape, -1)


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int):
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.W_pos[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)


class Unembed(nn.Module):
    def __init__(self, d_model: int, n_classes: int):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_model, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.W_U


class Transformer(HookedRootModule):
    """tokens (batch, n_ctx) int64 -> logits (batch, n_classes) at the last position."""

    def __init__(self, d_vocab: int, n_classes: int, n_ctx: int, *, n_layers: int = 1,
                 d_model: int = 128, n_heads: int = 4, d_head: int = 32, d_mlp: int = 512,
                 act: str = "relu", layernorm: bool = False, fast: bool = True,
                 init_scale: float = 1.0):
        super().__init__()
        self.d_vocab, self.n_classes, self.n_ctx = d_vocab, n_classes, n_ctx
        self.fast = fast
        self._cfg_args = dict(d_model=d_model, d_head=d_head, n_layers=n_layers, n_ctx=n_ctx, n_heads=n_heads,
                              d_mlp=d_mlp, d_vocab=d_vocab, act_fn=act,
                              normalization_type="LN" if layernorm else None)
        self.embed = Embed(d_vocab, d_model)
        self.hook_embed = HookPoint()      # (batch, pos, d_model)
        self.pos_embed = PosEmbed(n_ctx, d_model)
        self.hook_pos_embed = HookPoint()  # (batch, pos, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, d_head, d_mlp, n_ctx, act, layernorm) for _ in range(n_layers))
        self.ln_final = LayerNorm(d_model) if layernorm else nn.Identity()
        self.unembed = Unembed(d_model, n_classes)
        self.layernorm = layernorm
        self.reset_parameters(init_scale)
        self.setup()

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0) -> None:
        # Nanda et al.'s init: every matrix N(0, 1/d_model), W_U N(0, 1/d_vocab); biases zero.
        d_model = self.embed.W_E.shape[1]
        for name, param in self.named_parameters():
            if name.endswith(("b_in", "b_out", ".b")):
                param.zero_()
            elif name.endswith(".w"):
                param.fill_(1.0)
            elif name == "unembed.W_U":
                param.normal_(0.0, init_scale / math.sqrt(self.d_vocab))
            else:
                param.normal_(0.0, init_scale / math.sqrt(d_model))

    def hooks_active(self) -> bool:
        return any(hp._forward_hooks for hp in self.hook_dict.values())

    def forward(self, tokens: Tensor) -> Tensor:
        if self.fast and not self.hooks_active():
            return self.forward_fast(tokens)
        return self.forward_plain(tokens)

    def forward_plain(self, tokens: Tensor) -> Tensor:
        """Every position through every layer; every hook called."""
        resid = self.hook_embed(self.embed(tokens)) + self.hook_pos_embed(self.pos_embed(tokens))
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))[:, -1]

    def forward_fast(self, tokens: Tensor) -> Tensor:
        """Only what the last position's logits need; equal to forward_plain to float tolerance."""
        if len(self.blocks) == 1 and not self.layernorm:
            resid = self._one_layer_from_tables(tokens)
        else:
            resid = self.embed(tokens) + self.pos_embed(tokens)
            for block in self.blocks[:-1]:
                resid = block(resid)
            resid = self.blocks[-1](resid, last_only=True)
        return self.unembed(self.ln_final(resid))[:, -1]

    def answer_neurons(self, tokens: Tensor) -> Tensor | None:
        """(batch, d_mlp): the last MLP layer's activations at the answer position, computed as
        `forward_fast` computes them (a fifth of a hooked forward over every position, for
        Nanda's model on all p^2 inputs); None where that path does not apply."""
        if not (self.fast and len(self.blocks) == 1 and not self.layernorm):
            return None
        return self._one_layer_from_tables(tokens, neurons=True)

    def _one_layer_from_tables(self, tokens: Tensor, neurons: bool = False) -> Tensor:
        block = self.blocks[0]
        attn, mlp = block.attn, block.mlp
        n_ctx = tokens.shape[1]
        n_heads = attn.W_Q.shape[0]
        # Residual stream at layer 0 as a table over (token, position).
        table = self.embed.W_E[:, None, :] + self.pos_embed.W_pos[None, :n_ctx, :]
        # index_select, not fancy indexing: its backward (index_add) is several times faster on CPU.
        kv_rows = (tokens * n_ctx + torch.arange(n_ctx, device=tokens.device)).flatten()   # (batch * n_ctx,)
        k_tab = einsum(table, attn.W_K, "t p m, h m d -> t p h d").flatten(0, 1)           # (vocab * n_ctx, h, d)
        v_tab = einsum(table, attn.W_V, "t p m, h m d -> t p h d").flatten(0, 1)
        q_tab = einsum(table[:, -1], attn.W_Q, "t m, h m d -> t h d")                      # (vocab, h, d)
        # Every attention score is a query token's row against a key (token, position)'s: one table
        # of (vocab, vocab * n_ctx, h) scores, gathered per example, instead of a tiny matmul each.
        s_tab = einsum(q_tab, k_tab, "q h d, k h d -> q k h").flatten(0, 1) / attn.scale
        last = tokens[:, -1]
        rows = (last[:, None] * k_tab.shape[0]).expand(-1, n_ctx).flatten() + kv_rows
        scores = s_tab.index_select(0, rows).view(tokens.shape[0], n_ctx, n_heads)          # last row of the mask: all ones
        weights = scores.softmax(1)                                                           # over the keys
        v = v_tab.index_select(0, kv_rows).view(tokens.shape[0], n_ctx, n_heads, -1)
        z = (weights[..., None] * v).sum(1)                                                    # (batch, h, d)
        x_last = table[:, -1].index_select(0, last)                                          # (batch, d_model)
        resid = torch.addmm(x_last, z.flatten(1), attn.W_O.flatten(0, 1))
        # the MLP, biases added in place and ReLU in place (no hooks on this path; addmm's bias
        # broadcast copy is a measurable share of the test pass: bench/train_step.py)
        pre = torch.mm(resid, mlp.W_in).add_(mlp.b_in)
        post = torch.relu_(pre) if self._cfg_args["act_fn"] == "relu" else mlp.act(pre)
        if neurons:
            return post
        resid = torch.mm(post, mlp.W_out).add_(resid).add_(mlp.b_out)
        return resid[:, None, :]

    # ---------------------------------------------------------------- TransformerLens's interface

    @property
    def cfg(self):
        """The TransformerLensConfig TransformerLens's tools read (sizes, normalization, device)."""
        from transformer_lens.config import TransformerLensConfig

        return TransformerLensConfig(**self._cfg_args, device=str(self.embed.W_E.device))

    @property
    def W_U(self) -> Tensor:
        return self.unembed.W_U

    @property
    def W_E(self) -> Tensor:
        return self.embed.W_E

    @property
    def W_pos(self) -> Tensor:
        return self.pos_embed.W_pos

    def run_with_cache(self, *args, return_cache_object: bool = True, **kwargs):
        """(logits, cache): an `ActivationCache` (a plain dict with return_cache_object=False)."""
        from transformer_lens import ActivationCache

        out, cache = super().run_with_cache(*args, **kwargs)
        if return_cache_object:
            cache = ActivationCache(cache, self, has_batch_dim=not kwargs.get("remove_batch_dim", False))
        return out, cache

    def to_single_token(self, token: str | int) -> int:
        """"=" is the last token (the task's `equals_token`); operands are their numbers."""
        text = str(token).strip()
        if text == "=":
            return self.d_vocab - 1
        if not text.isdigit() or int(text) >= self.d_vocab - 1:
            raise ValueError(f"{token!r} is not a token of this task (0..{self.d_vocab - 2} or '=')")
        return int(text)

    def to_tokens(self, inputs, **_ignored) -> Tensor:
        """Tokens (batch, n_ctx) from "a b =" strings (or lists of them), token lists or a tensor."""
        if isinstance(inputs, Tensor):
            return inputs if inputs.dim() == 2 else inputs[None]
        if isinstance(inputs, str):
            inputs = [inputs]
        rows = [[self.to_single_token(t) for t in (row.split() if isinstance(row, str) else row)] for row in inputs]
        return torch.tensor(rows, dtype=torch.long, device=self.embed.W_E.device)

    def tokens_to_residual_directions(self, tokens) -> Tensor:
        """The unembedding direction of each answer token (class index): (..., d_model)."""
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)
        if isinstance(tokens, int):
            return self.W_U[:, tokens]
        tokens = torch.as_tensor(tokens, device=self.W_U.device)
        return self.W_U[:, tokens].movedim(0, -1)

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> Tensor:
        """The biases added to the residual stream before layer `layer` (the MLPs' b_out; the
        attention has no biases); with `mlp_input`, also up to that layer's MLP input."""
        total = torch.zeros(self.embed.W_E.shape[1], device=self.embed.W_E.device)
        if include_mlp_biases:
            for block in self.blocks[:layer]:
                total = total + block.mlp.b_out
        return total


@register_model("transformer", stackable=True)
def _build(config, task) -> Transformer:
    m = config.model
    return Transformer(task.vocab_size, task.n_classes, task.n_ctx, n_layers=m.n_layers, d_model=m.d_model,
                       n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp, act=m.act, layernorm=m.layernorm,
                       fast=m.fast, init_scale=m.init_scale)

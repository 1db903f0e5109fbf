"""An MLP on the operands of `a b =` tasks, with TransformerLens hook names.

Operands are a fixed encoding (`d_embed = 0`: one-hot, their binary digits, or each one number in
[-1, 1], `encoding`) or learned embeddings, concatenated, then hidden layers
`blocks.{i}.mlp` and a readout `unembed`. Options from Kumar et al. (2024): an output scale alpha
and the centered predictor f(x) = alpha * (g(x; theta) - g(x; theta_0)), which starts at zero
whatever alpha is. The initial parameters theta_0 are kept as persistent buffers `init.*` so a
checkpoint reproduces f on its own.

Three initializations: `init="fan_in"` draws weights N(0, 1/fan_in) (the standard
parameterization); `init="torch"` draws weights and biases as `nn.Linear` does, U(±1/sqrt(fan_in))
(Omnigrok's init scale multiplies this); `init="unit"` draws weights N(0, 1) and divides the output by the product of the
layers' fan-ins, f = alpha / (D N) W_2 phi(W_1 x) for one hidden layer (Kumar et al. App. 8.3,
after Gromov 2023). The two give the same function at initialization in distribution only up to
that normalization, and different gradient-descent dynamics: under "unit" each layer's
effective step scales with its fan-in.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.models import register_model
from grokscope.models.activations import activation

INITS = ("fan_in", "unit", "torch")


ENCODINGS = ("one_hot", "binary", "number")


class HiddenLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, act: str, bias: bool):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_in, d_out))
        self.b_in = nn.Parameter(torch.zeros(d_out)) if bias else None
        self.act = activation(act)
        self.hook_pre = HookPoint()   # (batch, d_out)
        self.hook_post = HookPoint()  # (batch, d_out)

    def forward(self, x: Tensor) -> Tensor:
        pre = x @ self.W_in
        if self.b_in is not None:
            pre = pre + self.b_in
        return self.hook_post(self.act(self.hook_pre(pre)))


class Block(nn.Module):
    def __init__(self, d_in: int, d_out: int, act: str, bias: bool):
        super().__init__()
        self.mlp = HiddenLayer(d_in, d_out, act, bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class Readout(nn.Module):
    def __init__(self, d_in: int, n_out: int, bias: bool):
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(d_in, n_out))
        self.b_U = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.W_U
        return out if self.b_U is None else out + self.b_U


class MLP(HookedRootModule):
    """tokens (batch, n_ctx) int64, the last token being `=` -> outputs (batch, n_classes)."""

    ntk_method = "layerwise"  # measures.ntk.LayerwiseMLP: the NTK from per-layer factors

    def __init__(self, d_vocab: int, n_classes: int, n_ctx: int, *, d_embed: int = 0,
                 hidden: tuple[int, ...] = (512,), act: str = "relu", bias: bool = True,
                 init_scale: float = 1.0, alpha: float = 1.0, centered: bool = False,
                 init: str = "fan_in", d_input: int = 0, encoding: str = "one_hot"):
        super().__init__()
        self.d_input = d_input                # > 0: real-valued inputs of this size (images, Gaussians)
        self.n_operands = n_ctx - 1           # the `=` token carries no information
        self.n_symbols = d_vocab - 1          # operand tokens are 0..d_vocab-2
        self.d_embed = d_embed if d_input == 0 else 0
        if init not in INITS:
            raise ValueError(f"unknown model.init {init!r}; choose one of {', '.join(INITS)}")
        self.init = init
        self.centered = centered
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown model.encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
        self.encoding = encoding
        self.n_bits = max(1, math.ceil(math.log2(max(self.n_symbols, 2))))
        if d_input > 0:
            d_in = d_input
        elif d_embed > 0:
            self.embed = nn.Module()
            self.embed.W_E = nn.Parameter(torch.empty(self.n_symbols, d_embed))
            d_in = d_embed * self.n_operands
        else:
            d_in = self.n_operands * {"one_hot": self.n_symbols, "binary": self.n_bits, "number": 1}[encoding]
        self.hook_embed = HookPoint()  # (batch, n_operands * width): the concatenated operands
        widths = (d_in, *hidden)
        self.blocks = nn.ModuleList(Block(widths[i], widths[i + 1], act, bias)
                                    for i in range(len(hidden)))
        self.unembed = Readout(widths[-1], n_classes, bias)
        self.hook_logits = HookPoint()  # (batch, n_classes), before the alpha scaling
        self.reset_parameters(init_scale)
        # the output multiplier: alpha, over the product of the fan-ins under init="unit"
        self.alpha = alpha / math.prod(widths) if init == "unit" else alpha
        if centered:
            for name, param in self.named_parameters():
                self.register_buffer("init_" + name.replace(".", "_"), param.detach().clone())
        self.setup()

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0) -> None:
        """"fan_in": weights N(0, 1/fan_in), biases 0 (the standard parameterization); "unit":
        weights N(0, 1); "torch": what `nn.Linear` draws, weights and biases U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) (Omnigrok's alpha multiplies this). Every parameter times `init_scale`."""
        fan_in = {}
        for name, param in self.named_parameters():
            if name.endswith(("W_in", "W_U")):
                fan_in[name[:-4]] = param.shape[0]
        for name, param in self.named_parameters():
            bias = name.endswith(("b_in", "b_U"))
            if self.init == "torch" and name != "embed.W_E":
                bound = init_scale / math.sqrt(fan_in[name[:-4]] if bias else param.shape[0])
                param.uniform_(-bound, bound)
            elif bias:
                param.zero_()
            elif name == "embed.W_E" or self.init == "unit":
                param.normal_(0.0, init_scale)
            else:
                param.normal_(0.0, init_scale / math.sqrt(param.shape[0]))

    def initial_parameters(self) -> dict[str, Tensor]:
        return {name: getattr(self, "init_" + name.replace(".", "_"))
                for name, _ in self.named_parameters()}

    def one_hot(self, operands: Tensor) -> Tensor:
        """The fixed input encoding, (batch, n_operands) -> (batch, n_operands * width): one-hot
        (width n_symbols), binary digits, least significant first (width n_bits), or the number
        2 a / (n_symbols - 1) - 1 (width 1). Comparisons and shifts, not F.one_hot, so that
        torch.func.vmap can batch it (the NTK computes per-example Jacobians)."""
        dtype = self.unembed.W_U.dtype
        if self.encoding == "binary":
            bits = torch.arange(self.n_bits, device=operands.device)
            return ((operands[..., None] >> bits) & 1).flatten(1).to(dtype)
        if self.encoding == "number":
            return (2 * operands.to(dtype) / (self.n_symbols - 1) - 1).flatten(1)
        symbols = torch.arange(self.n_symbols, device=operands.device)
        return (operands[..., None] == symbols).flatten(1).to(dtype)

    def g(self, tokens: Tensor) -> Tensor:
        if self.d_input > 0:
            return self._trunk(tokens.flatten(1).to(self.unembed.W_U.dtype))
        operands = tokens[:, : self.n_operands]
        if self.d_embed > 0:
            x = self.embed.W_E[operands].flatten(1)
        else:
            x = self.one_hot(operands)
        return self._trunk(x)

    def _trunk(self, x: Tensor) -> Tensor:
        x = self.hook_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.unembed(x))

    def forward(self, tokens: Tensor, _initial: bool = False) -> Tensor:
        if _initial:
            return self.g(tokens)
        if not self.centered:
            return self.alpha * self.g(tokens)
        # g(x; theta_0) first, so a cache from run_with_cache ends up holding the live pass.
        with torch.no_grad():
            out0 = functional_call(self, self.initial_parameters(), (tokens,), {"_initial": True})
        return self.alpha * (self.g(tokens) - out0)


@register_model("mlp", stackable=True)
def _build(config, task) -> MLP:
    m = config.model
    if m.encoding not in ENCODINGS:
        from grokscope.errors import UsageError

        raise UsageError(f"unknown model.encoding {m.encoding!r}; choose one of {', '.join(ENCODINGS)}")
    continuous = getattr(task, "is_continuous", False)
    n_out = task.n_classes or (task.all_labels.shape[1] if task.all_labels.dim() > 1 else 1)
    return MLP(task.vocab_size, n_out, task.n_ctx, d_embed=m.d_embed, hidden=m.hidden, act=m.act, bias=m.bias,
               init_scale=m.init_scale, alpha=m.alpha, centered=m.centered, init=m.init,
               d_input=task.all_inputs.shape[1] if continuous else 0, encoding=m.encoding)

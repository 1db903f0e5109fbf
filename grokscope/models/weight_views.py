"""Named views of a model's weights that probes need, whatever the model kind."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def token_embedding(model: nn.Module, n_symbols: int) -> Tensor:
    """(n_symbols, width): the vector each operand token is mapped to.

    The transformer's and the embedding MLP's `embed.W_E` rows; for an MLP on a fixed encoding,
    what the first layer makes of each token at each operand position, side by side (the map a
    token goes through): for one-hot operands, the first layer's input weights.
    """
    embed = getattr(model, "embed", None)
    if embed is not None and hasattr(embed, "W_E"):
        return embed.W_E[:n_symbols].detach()
    W_in = model.blocks[0].mlp.W_in.detach()
    if getattr(model, "encoding", "one_hot") != "one_hot":
        code = model.one_hot(torch.arange(n_symbols, device=W_in.device)[:, None]).to(W_in.dtype)
        width = code.shape[1]
        return torch.cat([code @ W_in[i * width:(i + 1) * width] for i in range(W_in.shape[0] // width)], dim=1)
    n_pos = W_in.shape[0] // n_symbols
    return torch.cat([W_in[i * n_symbols:(i + 1) * n_symbols] for i in range(n_pos)], dim=1)


def neuron_to_logit(model: nn.Module) -> Tensor:
    """(n_classes, d_mlp): W_L, the map from the last MLP layer's neurons to the logits
    (W_U^T W_out for the transformer; W_U^T for the MLP, whose last hidden layer feeds W_U)."""
    W_U = model.unembed.W_U.detach()
    blocks = getattr(model, "blocks", None)
    last = blocks[-1].mlp if blocks is not None else None
    if hasattr(last, "W_out"):
        return W_U.T @ last.W_out.detach().T
    return W_U.T


def last_mlp_hook(model: nn.Module) -> str:
    mapped = getattr(model, "neuron_hook", None)  # a user's model (models/adapter.py)
    return mapped if mapped else f"blocks.{len(model.blocks) - 1}.mlp.hook_post"


def answer_neuron_acts(model: nn.Module, inputs: Tensor) -> Tensor:
    """(batch, d_mlp) activations of the last MLP layer at the answer position."""
    fast = getattr(model, "answer_neurons", None)
    if fast is not None:
        with torch.no_grad():
            acts = fast(inputs)
        if acts is not None:
            return acts
    name = last_mlp_hook(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n == name)
    acts = cache[name]
    return acts[:, -1] if acts.dim() == 3 else acts

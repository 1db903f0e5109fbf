"""The restricted and excluded losses of Nanda et al. 2023 (section 5.1), as a pure function.

Both measure how much of a model's logits over the (a, b) grid the key Fourier frequencies of
a + b carry: the restricted loss keeps only those directions (low once the generalizing circuit
exists), the excluded loss removes them from the training logits (high once the model relies on
the circuit rather than memorization).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grokscope.measures.fourier import sum_directions


def restricted_and_excluded(logits: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                            p: int, keys: list[int]) -> dict[str, float]:
    """logits: (p*p, n_classes) over the row-major (a, b) grid.

    Restricted: each class's logit over the grid projected onto its mean plus the directions
    cos(w_k (a+b)), sin(w_k (a+b)) of the key frequencies; loss on all pairs.
    Excluded: those directions removed from the logits; loss on the training pairs.
    Both in float64. Also the excluded loss of each key frequency alone.
    """
    logits = logits.to(torch.float64)
    labels, train_idx = labels.to(logits.device), train_idx.to(logits.device)
    D = sum_directions(p, keys, device=logits.device)   # (2K, p*p), orthonormal, orthogonal to 1
    components = D.T @ (D @ logits)                   # the key-frequency part of every logit
    mean = logits.mean(0, keepdim=True)
    out = {
        "restricted_loss": F.cross_entropy(mean + components, labels).item(),
        "excluded_loss": F.cross_entropy((logits - components)[train_idx], labels[train_idx]).item(),
    }
    for i, k in enumerate(keys):
        Dk = D[2 * i: 2 * i + 2]
        single = logits - Dk.T @ (Dk @ logits)
        out[f"excluded_loss_k{k}"] = F.cross_entropy(single[train_idx], labels[train_idx]).item()
    return out

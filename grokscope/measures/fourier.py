"""Fourier analysis over Z_p (Nanda et al. 2023, sections 4-5), as pure functions.

The basis: row 0 is the constant 1/sqrt(p); then, for k = 1 .. (p-1)//2, cos(2 pi k x / p) and
sin(2 pi k x / p), each normalized to unit norm (cos before sin, the convention of the paper's
code; the TransformerLens demo puts sin first). For even p the last row is the Nyquist cosine.
The rows are orthonormal, so `fourier_basis(p) @ x` is an orthogonal change of basis.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fourier_basis(p: int, dtype: torch.dtype = torch.float64,
                  device: torch.device | str | None = None) -> tuple[Tensor, list[str]]:
    """(p, p) orthonormal basis over Z_p and its row labels ("const", "cos 1", "sin 1", ...)."""
    x = torch.arange(p, dtype=dtype, device=device)
    rows, labels = [torch.ones(p, dtype=dtype, device=device)], ["const"]
    for k in range(1, p // 2 + 1):
        rows.append(torch.cos(2 * math.pi * k * x / p))
        labels.append(f"cos {k}")
        if 2 * k != p:
            rows.append(torch.sin(2 * math.pi * k * x / p))
            labels.append(f"sin {k}")
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), labels


def frequency_of_rows(p: int, device: torch.device | str | None = None) -> Tensor:
    """The frequency k of every basis row (0 for the constant)."""
    return torch.tensor([0] + [k for k in range(1, p // 2 + 1) for _ in range(1 if 2 * k == p else 2)],
                        device=device)


def frequency_norms(coefficients: Tensor, p: int) -> Tensor:
    """Combine the cos and sin rows of each frequency: (p, ...) basis coefficients ->
    (p // 2 + 1,) norms, index k = frequency k (index 0: the constant)."""
    sq = coefficients.reshape(p, -1).pow(2).sum(1)
    out = torch.zeros(p // 2 + 1, dtype=sq.dtype, device=sq.device)
    out.index_add_(0, frequency_of_rows(p, sq.device), sq)
    return out.sqrt()


def gini(x: Tensor) -> float:
    """Gini coefficient of Hurley & Rickard (2009) of the magnitudes of x: 0 for a flat vector,
    1 - 1/N for a single spike. G = 1 - 2 sum_k (c_(k) / ||c||_1) (N - k + 1/2) / N over c sorted
    ascending."""
    c = x.detach().abs().flatten().to(torch.float64).sort().values
    n = c.numel()
    total = c.sum()
    if n == 0 or total == 0:
        return 0.0
    k = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
    return float(1 - 2 * ((c / total) * (n - k + 0.5) / n).sum())


def key_frequencies_from_norms(norms: Tensor, max_keys: int = 10) -> list[int]:
    """Key frequencies from per-frequency norms (index 0, the constant, is ignored): sort the
    energies (norm squared) of k >= 1 in decreasing order and cut at the largest ratio between
    neighbours among the top max_keys + 1. A grokked embedding has a few frequencies far above
    the rest (Nanda et al.'s model: 5, each at least 4x the next); returned sorted."""
    energy = norms[1:].to(torch.float64).pow(2)
    top = energy.sort(descending=True)
    head = top.values[: max_keys + 1].clamp_min(1e-300)
    n = int((head[:-1] / head[1:]).argmax()) + 1 if head.numel() > 1 else 1
    return sorted((top.indices[:n] + 1).tolist())


def sum_directions(p: int, keys: list[int], dtype: torch.dtype = torch.float64,
                   device: torch.device | str | None = None) -> Tensor:
    """Unit vectors cos(w_k (a + b)), sin(w_k (a + b)) over the row-major (a, b) grid, w_k = 2 pi k / p:
    (2 * len(keys), p * p). Orthonormal for distinct k and orthogonal to the constant."""
    a = torch.arange(p, dtype=dtype, device=device)[:, None]
    b = torch.arange(p, dtype=dtype, device=device)[None, :]
    rows = []
    for k in keys:
        phase = 2 * math.pi * k * (a + b) / p
        rows += [torch.cos(phase).flatten(), torch.sin(phase).flatten()]
    d = torch.stack(rows)
    return d / d.norm(dim=1, keepdim=True)


def neuron_frequency_fractions(acts: Tensor, p: int) -> Tensor:
    """acts: (p, p, n_neurons) activations over the (a, b) grid -> (n_frequencies, n_neurons): the
    share of each neuron's variance (constant removed) carried by the 2D Fourier terms that
    involve only frequency k: {const, cos k, sin k} x {const, cos k, sin k} minus const x const."""
    basis, _ = fourier_basis(p, acts.dtype, acts.device)
    coef = torch.einsum("ia,abn,jb->ijn", basis, acts, basis).pow(2)   # (p, p, n)
    coef[0, 0] = 0.0
    total = coef.sum((0, 1)).clamp_min(1e-30)
    freq = frequency_of_rows(p)
    n_freq = p // 2 + 1
    out = torch.zeros(n_freq, acts.shape[-1], dtype=acts.dtype, device=acts.device)
    for k in range(1, n_freq):
        idx = torch.cat([torch.tensor([0]), torch.nonzero(freq == k).flatten()]).to(acts.device)
        out[k] = coef[idx][:, idx].sum((0, 1)) / total
    return out

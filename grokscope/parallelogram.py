"""Representation quality from parallelograms (Liu, Kitouni, Nolte, Michaud, Tegmark, Williams
2022, "Towards Understanding Grokking: An Effective Theory of Representation Learning"), as pure
functions.

A parallelogram is a pair of distinct unordered pairs {i, j} != {m, n} with i + j = m + n (mod p
for modular tasks); it is realized when the embeddings satisfy E_i + E_j = E_m + E_n. Following
their code, embeddings are standardized per coordinate across symbols first and a parallelogram
counts when the mean squared residual of E_i + E_j - E_m - E_n is below a tolerance (0.01).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def parallelograms(p: int, modulus: int | None = None) -> Tensor:
    """(n, 4) int64 rows (i, j, m, n): i <= j, m <= n, (i, j) < (m, n), i + j = m + n (mod
    `modulus` when given). For p = 10 without a modulus there are 70, degenerate ones (i = j)
    included, as in the authors' enumeration."""
    by_sum: dict[int, list[tuple[int, int]]] = {}
    for i in range(p):
        for j in range(i, p):
            s = (i + j) % modulus if modulus else i + j
            by_sum.setdefault(s, []).append((i, j))
    rows = [(*a, *b) for pairs in by_sum.values() for a, b in itertools.combinations(pairs, 2)]
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 4)


def standardize(E: Tensor) -> Tensor:
    """Each coordinate to zero mean and unit standard deviation across symbols (the
    Bessel-corrected standard deviation, `torch.std`'s default, as in their code; constant
    coordinates are left centered)."""
    E = E.to(torch.float64)
    E = E - E.mean(0)
    std = E.std(0)
    return E / torch.where(std > 0, std, torch.ones_like(std))


def parallelogram_residuals(E: Tensor, quads: Tensor) -> Tensor:
    """Mean squared residual of E_i + E_j - E_m - E_n over coordinates, per parallelogram."""
    i, j, m, n = quads.unbind(1)
    return (E[i] + E[j] - E[m] - E[n]).pow(2).mean(1)


def rqi(E: Tensor, quads: Tensor, tol: float = 0.01) -> float:
    """Representation quality index: the share of parallelograms realized by the standardized
    embedding E (symbols x dims)."""
    if len(quads) == 0:
        return float("nan")
    return float((parallelogram_residuals(standardize(E), quads) < tol).double().mean())


def parallelogram_loss(E: Tensor, quads: Tensor) -> float:
    """The effective loss: mean squared parallelogram residual over the mean squared norm of the
    centered embeddings (scale-free, so shrinking E does not lower it)."""
    Ec = E.to(torch.float64) - E.to(torch.float64).mean(0)
    scale = Ec.pow(2).sum(1).mean()
    if scale == 0:
        return float("nan")
    i, j, m, n = quads.unbind(1)
    res = (Ec[i] + Ec[j] - Ec[m] - Ec[n]).pow(2).sum(1)
    return float(res.mean() / scale)


def predicted_accuracy(E: Tensor, train_pairs: Tensor, test_pairs: Tensor, modulus: int | None = None,
                       tol: float = 0.01) -> float:
    """Share of test pairs (a, b) that complete a realized parallelogram with some training pair
    (c, d) of the same sum, {c, d} != {a, b}: the accuracy the representation predicts (their
    section 3). The mirror (b, a) of a test pair does not count: it is no parallelogram."""
    if len(test_pairs) == 0:
        return float("nan")
    Es = standardize(E)
    key = lambda pairs: (pairs.sum(1) % modulus) if modulus else pairs.sum(1)
    train_sum, test_sum = key(train_pairs), key(test_pairs)
    sorted_train = train_pairs.sort(1).values
    hits = 0
    for s in test_sum.unique().tolist():
        tests, trains = test_pairs[test_sum == s], train_pairs[train_sum == s]
        if len(trains) == 0:
            continue
        res = ((Es[tests[:, 0]] + Es[tests[:, 1]])[:, None] - (Es[trains[:, 0]] + Es[trains[:, 1]])[None]).pow(2).mean(2)
        same = (tests.sort(1).values[:, None] == sorted_train[train_sum == s][None]).all(2)
        hits += int(((res < tol) & ~same).any(1).sum())
    return hits / len(test_pairs)

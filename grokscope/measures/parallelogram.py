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
from dataclasses import dataclass

import numpy as np
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
    i, j, m, n = quads.to(E.device).unbind(1)
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
    i, j, m, n = quads.to(E.device).unbind(1)
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
    train_pairs, test_pairs = train_pairs.to(E.device), test_pairs.to(E.device)
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


# ------------------------------------------------------------------ critical training fraction

@dataclass(frozen=True)
class CriticalFraction:
    """For each training-set size n: the probability that n random training pairs determine the
    representation up to translation and scale (Liu et al. 2022, section 3.3)."""

    p: int
    sizes: np.ndarray          # training-set sizes 0..p(p+1)/2
    probability: np.ndarray    # P(the training parallelograms pin the embedding down)
    stderr: np.ndarray         # 0 where exact
    method: str                # "exact" (all subsets) or "monte carlo (K orderings)"

    @property
    def fractions(self) -> np.ndarray:
        return self.sizes / self.sizes[-1]

    @property
    def critical(self) -> float:
        """The training fraction where the probability first reaches 1/2 (linear interpolation)."""
        prob, frac = self.probability, self.fractions
        k = int(np.argmax(prob >= 0.5))
        if k == 0:
            return float(frac[0])
        return float(np.interp(0.5, [prob[k - 1], prob[k]], [frac[k - 1], frac[k]]))


def unordered_pairs(p: int) -> list[tuple[int, int]]:
    """The samples of the toy addition task: (a, b) with a <= b, in row-major order."""
    return [(a, b) for a in range(p) for b in range(a, p)]


def parallelogram_equations(p: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, members): one row per parallelogram of the toy task, the coefficients of
    E_i + E_j - E_m - E_n = 0 over the p symbols, and the two sample ids it joins."""
    pairs = unordered_pairs(p)
    rows, members = [], []
    for s, t in itertools.combinations(range(len(pairs)), 2):
        (i, j), (m, n) = pairs[s], pairs[t]
        if i + j == m + n:
            row = np.zeros(p)
            np.add.at(row, [i, j], 1.0)
            np.add.at(row, [m, n], -1.0)
            rows.append(row)
            members.append((s, t))
    return np.array(rows).reshape(-1, p), np.array(members, dtype=np.int64).reshape(-1, 2)


def determines_representation(train: np.ndarray, A: np.ndarray, members: np.ndarray, p: int) -> bool:
    """Whether the parallelograms among the training samples leave only translation and scale
    free: rank(A_D) = p - 2 (the constant and the linear embedding always solve the equations)."""
    chosen = np.zeros(len(unordered_pairs(p)), dtype=bool)
    chosen[train] = True
    rows = A[chosen[members[:, 0]] & chosen[members[:, 1]]]
    return len(rows) > 0 and np.linalg.matrix_rank(rows) == p - 2


def critical_fraction(p: int = 10, *, samples: int = 2000, seed: int = 0,
                      exact: bool | None = None) -> CriticalFraction:
    """P(training set of size n determines the representation up to translation and scale), for
    every n from 0 to p(p+1)/2, for Liu et al.'s toy addition (unordered pairs, plain sum).

    exact=None enumerates every subset when there are at most 2^16 of them (p <= 5) and otherwise
    samples `samples` random orderings of the samples: the first n of a uniform random ordering are
    a uniform random n-subset, and since adding samples only adds equations, one ordering answers
    every n at once (binary search for the first n that determines the representation).
    """
    if p < 3:
        raise ValueError(f"critical_fraction needs p >= 3 (p = {p} has no parallelograms to learn from)")
    A, members = parallelogram_equations(p)
    N = p * (p + 1) // 2
    sizes = np.arange(N + 1)
    if exact is None:
        exact = N <= 16
    if exact:
        hits = np.zeros(N + 1)
        counts = np.zeros(N + 1)
        for mask in range(1 << N):
            train = np.flatnonzero([(mask >> k) & 1 for k in range(N)])
            counts[len(train)] += 1
            hits[len(train)] += determines_representation(train, A, members, p)
        return CriticalFraction(p, sizes, hits / counts, np.zeros(N + 1), "exact")
    rng = np.random.default_rng(seed)
    first = np.empty(samples, dtype=np.int64)
    for k in range(samples):
        order = rng.permutation(N)
        lo, hi = 0, N  # all N samples always determine it (p >= 3)
        while lo < hi:
            mid = (lo + hi) // 2
            if determines_representation(order[:mid], A, members, p):
                hi = mid
            else:
                lo = mid + 1
        first[k] = lo
    prob = (first[None, :] <= sizes[:, None]).mean(1)
    return CriticalFraction(p, sizes, prob, np.sqrt(prob * (1 - prob) / samples),
                            f"monte carlo ({samples} orderings)")

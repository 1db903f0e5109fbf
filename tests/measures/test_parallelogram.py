import itertools

import numpy as np
import pytest
import torch

from grokscope.measures.parallelogram import (
    parallelogram_loss,
    parallelograms,
    predicted_accuracy,
    rqi,
    standardize,
)


def test_enumeration_matches_the_authors_count():
    quads = parallelograms(10)
    assert len(quads) == 70
    # brute force: distinct unordered pairs with equal sums
    pairs = [(i, j) for i in range(10) for j in range(i, 10)]
    brute = {(a, b) for a, b in itertools.combinations(pairs, 2) if sum(a) == sum(b)}
    assert {((int(r[0]), int(r[1])), (int(r[2]), int(r[3]))) for r in quads} == brute
    assert ((quads[:, 0] == quads[:, 1]) | (quads[:, 2] == quads[:, 3])).any()  # degenerate: 1 + 1 = 0 + 2
    mod = parallelograms(7, modulus=7)
    assert ((mod[:, 0] + mod[:, 1]) % 7 == (mod[:, 2] + mod[:, 3]) % 7).all()
    assert len(mod) > len(parallelograms(7))


def test_rqi_of_planted_and_random_embeddings():
    quads = parallelograms(10)
    i = torch.arange(10, dtype=torch.float64)[:, None]
    linear = 3.0 * i + torch.tensor([[1.0, -2.0]]) * i - 5.0  # E_i = c i + b, 2-d
    assert rqi(linear, quads) == 1.0
    assert parallelogram_loss(linear, quads) == pytest.approx(0.0, abs=1e-20)
    rnd = torch.randn(10, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert rqi(rnd, quads) < 0.05
    assert parallelogram_loss(rnd, quads) > 0.5
    assert parallelogram_loss(7 * rnd, quads) == pytest.approx(parallelogram_loss(rnd, quads))  # scale-free


def test_standardize():
    E = torch.tensor([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    S = standardize(E)
    assert S[:, 0].mean() == pytest.approx(0) and S[:, 0].std() == pytest.approx(1)  # Bessel, as their code
    assert (S[:, 1] == 0).all()


def test_predicted_accuracy():
    i = torch.arange(10, dtype=torch.float64)[:, None]
    pairs = torch.tensor([(a, b) for a in range(10) for b in range(a, 10)])
    train_pairs, test_pairs = pairs[::2], pairs[1::2]
    train_sums = set(train_pairs.sum(1).tolist())
    with_partner = sum(int(s) in train_sums for s in test_pairs.sum(1)) / len(test_pairs)
    # a linear embedding realizes every parallelogram: it predicts exactly the pairs with a partner
    assert predicted_accuracy(i, train_pairs, test_pairs) == pytest.approx(with_partner)
    assert 0.5 < with_partner < 1
    rnd = torch.randn(10, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert predicted_accuracy(rnd, train_pairs, test_pairs) < 0.2


def _rank_fraction_free(rows: list[list[int]], p: int) -> int:
    """Rank by exact rational Gaussian elimination (independent of numpy's SVD rank)."""
    from fractions import Fraction

    m = [[Fraction(v) for v in r] for r in rows]
    rank, col = 0, 0
    while rank < len(m) and col < p:
        pivot = next((r for r in range(rank, len(m)) if m[r][col] != 0), None)
        if pivot is None:
            col += 1
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for r in range(len(m)):
            if r != rank and m[r][col] != 0:
                f = m[r][col] / m[rank][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[rank])]
        rank += 1
        col += 1
    return rank


def _brute_force_probability(p: int) -> list[float]:
    pairs = [(a, b) for a in range(p) for b in range(a, p)]
    N = len(pairs)
    hits, counts = [0] * (N + 1), [0] * (N + 1)
    for n in range(N + 1):
        for subset in itertools.combinations(range(N), n):
            rows = []
            for s, t in itertools.combinations(subset, 2):
                (i, j), (k, l) = pairs[s], pairs[t]
                if i + j == k + l:
                    row = [0] * p
                    row[i] += 1
                    row[j] += 1
                    row[k] -= 1
                    row[l] -= 1
                    rows.append(row)
            counts[n] += 1
            hits[n] += bool(rows) and _rank_fraction_free(rows, p) == p - 2
    return [h / c for h, c in zip(hits, counts)]


@pytest.mark.parametrize("p", [3, 4])
def test_critical_fraction_exact_matches_brute_force(p):
    from grokscope.measures.parallelogram import critical_fraction

    result = critical_fraction(p)
    assert result.method == "exact"
    assert result.probability.tolist() == pytest.approx(_brute_force_probability(p))
    assert result.probability[-1] == 1.0 and result.probability[0] == 0.0


def test_critical_fraction_monte_carlo_agrees_with_exact():
    from grokscope.measures.parallelogram import critical_fraction

    exact = critical_fraction(5)
    mc = critical_fraction(5, samples=3000, seed=1, exact=False)
    assert exact.method == "exact" and mc.method.startswith("monte carlo")
    assert abs(mc.probability - exact.probability).max() < 4 * mc.stderr.max() + 1e-9
    assert (np.diff(mc.probability) >= 0).all()  # more data never un-determines it
    p10 = critical_fraction(10, samples=400)
    assert 0.35 < p10.critical < 0.47  # Liu et al.: about 0.4 for p = 10


# ------------------------------------------------------------------ toy model (Liu et al.)

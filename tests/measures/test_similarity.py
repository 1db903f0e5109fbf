import itertools

import pytest
import torch

from grokscope.measures.similarity import (
    SimilarityError,
    center_kernel,
    hsic,
    kernel_alignment,
    kernel_kernel_alignment,
    linear_cka,
    minibatch_cka,
    rbf_cka,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_center_kernel_equals_HKH():
    K = _rand(7, 7)
    H = torch.eye(7, dtype=torch.float64) - 1 / 7
    torch.testing.assert_close(center_kernel(K), H @ K @ H)


@pytest.mark.parametrize("fn", [lambda X, Y: linear_cka(X, Y), lambda X, Y: linear_cka(X, Y, debiased=True),
                                lambda X, Y: rbf_cka(X, Y), lambda X, Y: rbf_cka(X, Y, debiased=True)])
def test_cka_of_x_with_itself_is_one(fn):
    X = _rand(30, 5)
    assert fn(X, X) == pytest.approx(1.0, abs=1e-12)


def test_linear_cka_invariances():
    X, Y = _rand(40, 6, seed=1), _rand(40, 4, seed=2)
    Q, _ = torch.linalg.qr(_rand(6, 6, seed=3))
    base = linear_cka(X, Y)
    assert linear_cka(X @ Q, Y) == pytest.approx(base, rel=1e-10)          # orthogonal transform
    assert linear_cka(3.7 * X, Y) == pytest.approx(base, rel=1e-10)        # isotropic scaling
    assert linear_cka(X + 5.0, Y) == pytest.approx(base, rel=1e-10)        # translation
    assert linear_cka(X @ Q, 0.1 * Y, debiased=True) == pytest.approx(linear_cka(X, Y, debiased=True), rel=1e-10)
    assert rbf_cka(X @ Q, Y) == pytest.approx(rbf_cka(X, Y), rel=1e-10)   # the median heuristic is rotation-invariant


def test_linear_cka_feature_space_equals_kernel_form():
    X, Y = _rand(25, 8, seed=4), _rand(25, 3, seed=5)
    K, L = X @ X.T, Y @ Y.T
    expected = hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L))
    assert linear_cka(X, Y) == pytest.approx(float(expected), rel=1e-12)


def _hsic_u_statistic(K, L):
    """Song et al. 2012, eq. (5): the U-statistic over ordered 4-tuples of distinct indices."""
    n = K.shape[0]
    total = 0.0
    for i, j, q, r in itertools.permutations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations((i, j, q, r)):
            h += K[t, u] * L[t, u] + K[t, u] * L[v, w] - 2 * K[t, u] * L[t, v]
        total += h / 24
    return total / (n * (n - 1) * (n - 2) * (n - 3))


def test_unbiased_hsic_matches_its_definition():
    X, Y = _rand(6, 3, seed=6), _rand(6, 2, seed=7)
    K, L = X @ X.T, Y @ Y.T
    assert float(hsic(K, L, unbiased=True)) == pytest.approx(_hsic_u_statistic(K.numpy(), L.numpy()), rel=1e-10)


def test_alignment_of_target_with_itself_is_one():
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    Y = torch.nn.functional.one_hot(y).double()
    assert kernel_alignment(Y @ Y.T, y) == pytest.approx(1.0)
    assert kernel_alignment(Y @ Y.T, Y) == pytest.approx(1.0)
    assert kernel_kernel_alignment(Y @ Y.T, 2 * Y @ Y.T + 3.0) == pytest.approx(1.0)  # constant shift centered away
    K = _rand(8, 8, seed=8)
    assert abs(kernel_alignment(K @ K.T, y)) < 0.9


def test_minibatch_cka_of_identical_batches():
    X = _rand(64, 5, seed=9)
    pairs = [(X[i:i + 16], X[i:i + 16]) for i in range(0, 64, 16)]
    assert minibatch_cka(pairs) == pytest.approx(1.0)
    Y = _rand(64, 5, seed=10)
    value = minibatch_cka([(X[i:i + 16], Y[i:i + 16]) for i in range(0, 64, 16)])
    assert -0.5 < value < 0.5


@pytest.mark.parametrize("call, message", [
    (lambda: linear_cka(_rand(3, 2), _rand(3, 2), debiased=True), "at least 4 examples"),
    (lambda: kernel_alignment(_rand(3, 3), torch.tensor([0, 1, 0])), "at least 4 examples"),
    (lambda: linear_cka(torch.ones(10, 3), _rand(10, 2)), "constant across examples"),
    (lambda: kernel_alignment(torch.ones(6, 6), torch.tensor([0, 1, 0, 1, 0, 1])), "kernel is constant"),
    (lambda: linear_cka(_rand(5, 2), _rand(6, 2)), "same number of examples"),
])
def test_guards_raise_clear_errors(call, message):
    with pytest.raises(SimilarityError, match=message):
        call()

"""The LLC estimator against ground truth: devinterp's own accuracy test (the normal-crossing
model, whose learning coefficient is 1/(2 max k)) and a regular model (λ = d/2), and the
diagnostics on traces built to trip each one."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("devinterp", reason="the llc extra is not installed (pip install -e .[llc])")

from grokscope.measures.llc import SGLDSettings, default_nbeta, estimate_llc, llc_diagnostics  # noqa: E402


class NormalCrossing(torch.nn.Module):
    """y = x · w1^k1 · w2^k2, at the true parameter w* = 0."""

    def __init__(self, powers):
        super().__init__()
        self.powers = torch.tensor(powers, dtype=torch.float32)
        self.weights = torch.nn.Parameter(torch.zeros(len(powers)))

    def forward(self, x):
        return x * torch.prod(self.weights ** self.powers)


@pytest.fixture(scope="module")
def crossing_data():
    """devinterp's data: x ~ N(0, 2²), y = 0.25 ε, n = 1,000."""
    g = torch.Generator().manual_seed(42)
    x = torch.normal(0, 2, size=(1000,), generator=g)
    y = 0.25 * torch.normal(0, 1, size=(1000,), generator=g)
    return x, y


# devinterp's accuracy test: SGLD lr 4e-4, nβ = n / ln n, 10 chains, full batch, 5,000 draws,
# pass within 3.5 chain standard deviations. One case per max k (true λ 0.5, 0.25, 0.167).
# About 15 s each: slow, and run by CI's second pass (scripts/test.sh).
@pytest.mark.slow
@pytest.mark.parametrize("powers,true_lc", [([0, 1], 0.5), ([1, 2], 0.25), ([2, 3], 1 / 6)])
def test_normal_crossing_matches_its_learning_coefficient(crossing_data, powers, true_lc):
    x, y = crossing_data
    settings = SGLDSettings(epsilon=4e-4, nbeta=default_nbeta(len(x)), gamma=0.0, chains=10, draws=5000,
                            burnin=0, batch_size=0, seed=42)
    r = estimate_llc(NormalCrossing(powers), x, y, F.mse_loss, settings)
    assert abs(r["mean"] - true_lc) < 3.5 * r["std"], (powers, r["mean"], r["std"], true_lc)
    assert r["std"] < true_lc  # the tolerance is not so wide that anything passes


def test_ordering_of_singular_models(crossing_data):
    """More degenerate (higher max k) means lower λ̂, as the theory orders them."""
    x, y = crossing_data
    settings = SGLDSettings(epsilon=4e-4, nbeta=default_nbeta(len(x)), gamma=0.0, chains=4, draws=2000,
                            burnin=500, batch_size=0, seed=1)
    means = [estimate_llc(NormalCrossing(p), x, y, F.mse_loss, settings)["mean"] for p in ([0, 1], [0, 2], [0, 4])]
    assert means[0] > means[1] > means[2] > 0, means


def test_regular_model_has_half_its_dimension():
    """Linear regression in d = 4 parameters at its least-squares fit: a quadratic loss of full
    rank, λ = d / 2 = 2 exactly (E[L − L*] = d / (2 nβ) under exp(−nβ L))."""
    g = torch.Generator().manual_seed(0)
    n, d = 1000, 4
    x = torch.normal(0, 1, size=(n, d), generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.25 * torch.normal(0, 1, size=(n,), generator=g)
    model = torch.nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y[:, None]).solution.T)

    def loss(out, target):
        return F.mse_loss(out[:, 0], target)

    settings = SGLDSettings(epsilon=2e-4, nbeta=default_nbeta(n), gamma=0.0, chains=4, draws=1000, burnin=200,
                            batch_size=0, seed=0)
    r = estimate_llc(model, x, y, loss, settings)
    assert abs(r["mean"] - d / 2) < 3 * r["std"] / math.sqrt(4) + 0.05 * d / 2, r  # 3 standard errors + 5%
    assert llc_diagnostics(r["trace"], r["init_loss"], r["per_chain"]) == []


def test_the_model_is_left_as_it_was():
    model = torch.nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(50, 3), torch.randn(50)
    estimate_llc(model, x, y, lambda o, t: F.mse_loss(o[:, 0], t), SGLDSettings(chains=2, draws=20, burnin=0))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_diverging_chain_is_nan_and_diagnosed():
    """A huge step size: the chains blow up; the estimate says so instead of raising."""
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(100, 3), torch.randn(100)
    r = estimate_llc(model, x, y, lambda o, t: F.mse_loss(o[:, 0], t),
                     SGLDSettings(epsilon=50.0, nbeta=100.0, gamma=0.0, chains=2, draws=200, burnin=0))
    assert "chains diverged" in " ".join(llc_diagnostics(r["trace"], r["init_loss"], r["per_chain"]))


def test_diagnostics_on_built_traces():
    rng = np.random.default_rng(0)
    clean = 1.0 + 0.01 * rng.exponential(size=(4, 400))
    assert llc_diagnostics(clean, 1.0, 2.0 * np.ones(4)) == []
    spiky = clean.copy()
    spiky[1, 200] = 100.0
    assert "loss spikes in 1 of 4 chains" in " ".join(llc_diagnostics(spiky, 1.0, 2.0 * np.ones(4)))
    rising = 1.0 + np.linspace(0, 0.02, 400)[None, :] * np.ones((4, 1))
    assert "has not flattened" in " ".join(llc_diagnostics(rising, 1.0, 2.0 * np.ones(4)))
    below = 1.0 - 0.01 * rng.exponential(size=(4, 400))
    assert "negative estimate" in " ".join(llc_diagnostics(below, 1.0, -np.ones(4)))
    nan = clean.copy()
    nan[2, 50:] = np.nan
    per_chain = 2.0 * np.ones(4)
    per_chain[2] = np.nan
    assert "1 of 4 chains diverged" in " ".join(llc_diagnostics(nan, 1.0, per_chain))

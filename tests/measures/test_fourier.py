"""The Fourier basis over Z_p, frequency norms, Gini, key frequencies (measures.fourier)."""

import math

import pytest
import torch

from grokscope.measures.fourier import (
    fourier_basis,
    frequency_norms,
    gini,
    key_frequencies_from_norms,
    neuron_frequency_fractions,
)


@pytest.mark.parametrize("p", [5, 8, 13, 113])
def test_basis_is_orthonormal_and_ordered(p):
    basis, labels = fourier_basis(p)
    assert basis.shape == (p, p) and len(labels) == p
    torch.testing.assert_close(basis @ basis.T, torch.eye(p, dtype=torch.float64))
    assert labels[:3] == ["const", "cos 1", "sin 1"]  # cos before sin
    x = torch.arange(p, dtype=torch.float64)
    torch.testing.assert_close(basis[2], torch.sin(2 * math.pi * x / p) / math.sqrt(p / 2))


def _planted_embedding(p, freqs, d=32, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p, dtype=torch.float64)
    E = noise * torch.randn(p, d, generator=g, dtype=torch.float64)
    for k in freqs:
        for fn in (torch.cos, torch.sin):
            E += fn(2 * math.pi * k * x / p)[:, None] * torch.randn(1, d, generator=g, dtype=torch.float64)
    return E


@pytest.mark.parametrize("freqs", [[3], [14, 35, 41, 42, 52], [1, 2, 56]])
def test_planted_frequencies_are_found(freqs):
    p = 113
    basis, _ = fourier_basis(p)
    E = _planted_embedding(p, freqs, noise=0.05)
    norms = frequency_norms(basis @ E, p)
    assert key_frequencies_from_norms(norms) == sorted(freqs)
    assert gini((basis @ E).norm(dim=1)) > 0.6  # noise floor on 100+ other rows


def test_random_embedding_has_low_gini():
    p = 113
    basis, _ = fourier_basis(p)
    E = torch.randn(p, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert gini((basis @ E).norm(dim=1)) < 0.15


@pytest.mark.parametrize("n", [1, 2, 10, 113])
def test_gini_analytic_values(n):
    assert gini(torch.ones(n)) == pytest.approx(0.0, abs=1e-12)
    spike = torch.zeros(n)
    spike[n // 2] = 3.0
    assert gini(spike) == pytest.approx(1 - 1 / n)


def test_gini_two_level_vector():
    # half zeros, half ones: G = 1 - 2 * sum over the ones of (1/(N/2)) (N - k + 1/2)/N = 1/2
    assert gini(torch.tensor([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.5)
    assert gini(torch.tensor([1.0, -1.0])) == pytest.approx(0.0)  # magnitudes


def test_frequency_norms_combine_cos_and_sin():
    p = 11
    coef = torch.zeros(p, 3, dtype=torch.float64)
    coef[3, 0], coef[4, 1] = 3.0, 4.0  # cos 2 and sin 2
    norms = frequency_norms(coef, p)
    assert norms[2] == pytest.approx(5.0) and norms.sum() == pytest.approx(5.0)


def test_neuron_fractions_of_planted_neurons():
    p = 13
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    w = 2 * math.pi * 4 / p
    single = torch.cos(w * a) * torch.cos(w * b) + 0.5 * torch.sin(w * a)       # frequency 4 only
    mixed = torch.cos(w * a) + torch.cos(2 * math.pi * 1 / p * b)               # half 4, half 1
    acts = torch.stack([single, mixed], dim=-1)
    frac = neuron_frequency_fractions(acts, p)
    assert frac[4, 0] == pytest.approx(1.0)
    assert frac[4, 1] == pytest.approx(0.5) and frac[1, 1] == pytest.approx(0.5)

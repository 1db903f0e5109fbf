"""Nanda et al.'s restricted and excluded losses (measures.restricted) on planted logits."""

import pytest
import torch

from grokscope.measures.fourier import sum_directions
from grokscope.measures.restricted import restricted_and_excluded


def test_restricted_loss_of_key_frequency_logits_equals_plain_loss():
    p, keys = 13, [2, 5]
    grid = sum_directions(p, keys)                                      # (4, p*p)
    g = torch.Generator().manual_seed(0)
    logits = grid.T @ (10 * torch.randn(4, p, generator=g, dtype=torch.float64))
    logits = logits + torch.randn(1, p, generator=g, dtype=torch.float64)  # class means
    labels = torch.randint(0, p, (p * p,), generator=g)
    train = torch.arange(0, p * p, 2)
    out = restricted_and_excluded(logits, labels, train, p, keys)
    plain = torch.nn.functional.cross_entropy(logits, labels).item()
    assert out["restricted_loss"] == pytest.approx(plain, rel=1e-12)
    # with the key directions removed only the class means remain: the loss of a constant logit row
    const = torch.nn.functional.cross_entropy(logits.mean(0, keepdim=True).expand(len(train), -1),
                                              labels[train]).item()
    assert out["excluded_loss"] == pytest.approx(const, rel=1e-10)


def test_excluded_loss_ignores_other_frequencies():
    p = 13
    other = sum_directions(p, [3])
    g = torch.Generator().manual_seed(1)
    logits = other.T @ torch.randn(2, p, generator=g, dtype=torch.float64)
    labels = torch.randint(0, p, (p * p,), generator=g)
    train = torch.arange(p * p)
    out = restricted_and_excluded(logits, labels, train, p, [5])
    plain = torch.nn.functional.cross_entropy(logits, labels).item()
    assert out["excluded_loss"] == pytest.approx(plain, rel=1e-12)

"""Composition in the symmetric group S_n (S3 in Liu et al. 2022, S5 in Power et al. 2022)."""

from __future__ import annotations

import itertools
import math

import torch

from grokscope.errors import UsageError
from grokscope.tasks.base import Task, register_task, shuffled_split


def permutations(n: int) -> list[tuple[int, ...]]:
    """The elements of S_n in lexicographic order; token i is permutations(n)[i]."""
    return list(itertools.permutations(range(n)))


def compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """(a o b)(i) = a[b[i]]: apply b first, then a."""
    return tuple(a[i] for i in b)


def permutation_task(n: int, frac_train: float, seed: int) -> Task:
    if not 2 <= n <= 6:
        raise UsageError(f"task.n must be between 2 and 6 (S_6 already has 518,400 pairs), got {n}")
    if not 0.0 < frac_train < 1.0:
        raise UsageError(f"task.frac_train must be between 0 and 1, got {frac_train}")
    elements = permutations(n)
    index = {perm: i for i, perm in enumerate(elements)}
    order = math.factorial(n)
    pairs = [(i, j) for i in range(order) for j in range(order)]
    inputs = torch.tensor([(i, j, order) for i, j in pairs], dtype=torch.long)
    labels = torch.tensor([index[compose(elements[i], elements[j])] for i, j in pairs],
                          dtype=torch.long)
    train, test = shuffled_split(len(pairs), frac_train, seed)
    return Task(f"permutation-S{n}", inputs, labels, torch.tensor(train), torch.tensor(test),
                vocab_size=order + 1, n_classes=order,
                info={"n": n, "order": order, "equals_token": order})


@register_task("permutation", lambda t: f"permutation S{t.n} frac_train={t.frac_train}")
def _build(config) -> Task:
    return permutation_task(config.task.n, config.task.frac_train, config.split_seed)

"""Polynomial regression of Kumar et al. 2024 (section 5): x ~ N(0, I/D), y = (beta . x)^2 / 2
with beta ~ N(0, I); P training points and `n_test` test points, all drawn from one seed."""

from __future__ import annotations

import math

import torch

from grokscope.errors import UsageError
from grokscope.tasks.base import Task, register_task


def polynomial_task(d_input: int, n_train: int, n_test: int, seed: int) -> Task:
    if d_input < 1 or n_train < 1 or n_test < 1:
        raise UsageError("task.d_input, task.n_train and task.n_test must be positive")
    g = torch.Generator().manual_seed(seed)
    beta = torch.randn(d_input, generator=g, dtype=torch.float64)
    x = torch.randn(n_train + n_test, d_input, generator=g, dtype=torch.float64) / math.sqrt(d_input)
    y = 0.5 * (x @ beta) ** 2
    return Task("polynomial", x.float(), y.float(), torch.arange(n_train), torch.arange(n_train, n_train + n_test),
                vocab_size=0, n_classes=0,
                info={"d_input": d_input, "beta": beta, "regression": True})


@register_task("polynomial", lambda t: f"polynomial D={t.d_input} n_train={t.n_train} n_test={t.n_test}")
def _build(config) -> Task:
    t = config.task
    return polynomial_task(t.d_input, t.n_train, t.n_test, config.split_seed)

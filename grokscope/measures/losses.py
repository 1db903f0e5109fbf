"""Losses and accuracy as pure functions, shared by both trainers and the probes.

- `cross_entropy`: classification.
- `mse`: mean squared error to one-hot targets, mean over every entry (Omnigrok; Kumar et al.'s toy).
- `sse`: squared error to one-hot targets summed over the outputs, mean over examples: |f(x) - y|²
  averaged over the batch (Gromov 2023; Kumar et al. App. 8.3). It is `mse` times the number of
  classes, so gradient descent at the same lr runs that many times faster.
- `target_mse`: mean squared error to a fixed random target vector per class, prediction = the
  nearest target (Liu et al. 2022's toy model); the task holds the targets (`tasks.task_targets`).
- real-valued labels (regression tasks): mean squared error, accuracy NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("cross_entropy", "mse", "sse", "target_mse")


def loss_and_accuracy(out: Tensor, labels: Tensor, loss: str, dtype: torch.dtype,
                      targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean loss in `dtype` (float64 avoids the float32 log-softmax floor near 1e-7) and accuracy
    (NaN for regression, where labels are real numbers)."""
    out_ = out.to(dtype)
    if labels.is_floating_point():  # regression: mean squared error, no accuracy
        value = F.mse_loss(out_.reshape(labels.shape), labels.to(dtype))
        return value, torch.full((), float("nan"))
    if loss == "target_mse":
        targets = targets.to(dtype)
        value = F.mse_loss(out_, targets[labels])
        # nearest target: argmin_c |o - t_c|^2 = argmin_c (|t_c|^2 - 2 o.t_c)
        distances = targets.pow(2).sum(-1) - 2 * out_ @ targets.T
        return value, (distances.argmin(-1) == labels).double().mean()
    if loss == "cross_entropy":
        value = F.cross_entropy(out_, labels)
    else:
        value = F.mse_loss(out_, F.one_hot(labels, out.shape[-1]).to(dtype))
        if loss == "sse":
            value = value * out.shape[-1]
    return value, (out.argmax(-1) == labels).double().mean()

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
DTYPES = {"float32": torch.float32, "float64": torch.float64}   # train.loss_dtype, the NTK probe's dtype


def loss_value(out: Tensor, labels: Tensor, loss: str, dtype: torch.dtype,
               targets: Tensor | None = None) -> Tensor:
    """Mean loss in `dtype` (float64 avoids the float32 log-softmax floor near 1e-7)."""
    out_ = out.to(dtype)
    if labels.is_floating_point():  # regression: mean squared error
        return F.mse_loss(out_.reshape(labels.shape), labels.to(dtype))
    if loss == "target_mse":
        return F.mse_loss(out_, targets.to(device=out.device, dtype=dtype)[labels])
    if loss == "cross_entropy":
        return F.cross_entropy(out_, labels)
    value = F.mse_loss(out_, F.one_hot(labels, out.shape[-1]).to(dtype))
    return value * out.shape[-1] if loss == "sse" else value


def embed_penalty(embedding: Tensor, l1: float, dtype: torch.dtype) -> Tensor:
    """`l1` x the mean absolute entry of the embedding (Liu et al.'s S3 notebook adds it to the
    training loss with l1 = 1e-3); what the trainers add to `loss_value` when `train.embed_l1` > 0."""
    return l1 * embedding.to(dtype).abs().mean()


def accuracy(out: Tensor, labels: Tensor, loss: str, dtype: torch.dtype,
             targets: Tensor | None = None) -> Tensor:
    """Share of correct predictions (NaN for regression, where labels are real numbers): the
    largest output, or for `target_mse` the nearest target."""
    if labels.is_floating_point():
        return torch.full((), float("nan"), device=out.device)
    if loss == "target_mse":
        targets = targets.to(device=out.device, dtype=dtype)
        # nearest target: argmin_c |o - t_c|^2 = argmin_c (|t_c|^2 - 2 o.t_c)
        distances = targets.pow(2).sum(-1) - 2 * out.to(dtype) @ targets.T
        return (distances.argmin(-1) == labels).double().mean()
    return (out.argmax(-1) == labels).double().mean()


def loss_and_accuracy(out: Tensor, labels: Tensor, loss: str, dtype: torch.dtype,
                      targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`loss_value` and `accuracy` of the same outputs."""
    return loss_value(out, labels, loss, dtype, targets), accuracy(out, labels, loss, dtype, targets)

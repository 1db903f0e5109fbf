"""The test loss of Kumar et al.'s committee machine from its sufficient statistics, as pure functions.

With phi(h) = h + eps/2 h^2 the centered network is a quadratic form,
    f(x) = a . x + x^T B x,  a = alpha (w_bar - w_bar_0),  B = (alpha eps / 2)(M - M_0),
w_bar = mean_i w_i and M = mean_i w_i w_i^T (Kumar et al. 2024, section 5, eq. 6). The target is
y = x^T (beta beta^T / 2) x, so the error is e(x) = a . x + x^T A x with A = B - beta beta^T / 2,
and for x ~ N(0, I/D) the expected test loss splits exactly into three terms:
    E[e^2] = |a|^2 / D              linear-mode error (the network's linear part, absent in y)
           + 2 ||A||_F^2 / D^2      misalignment (the learned quadratic form against beta beta^T / 2)
           + (tr A)^2 / D^2         variance (the offset of the quadratic form's trace)
"""

from __future__ import annotations

import torch


def sufficient_statistics(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W (D, N), column i = w_i -> (w_bar (D,), M (D, D))."""
    W = W.to(torch.float64)
    return W.mean(1), W @ W.T / W.shape[1]


def kumar_error_terms(W: torch.Tensor, W0: torch.Tensor, beta: torch.Tensor, alpha: float, eps: float,
                      centered: bool = True) -> dict[str, float]:
    D = W.shape[0]
    w_bar, M = sufficient_statistics(W)
    if centered:
        w_bar0, M0 = sufficient_statistics(W0)
        w_bar, M = w_bar - w_bar0, M - M0
    a = alpha * w_bar
    beta = beta.to(device=M.device, dtype=torch.float64)
    A = 0.5 * alpha * eps * M - 0.5 * torch.outer(beta, beta)
    terms = {
        "error_linear": float(a @ a) / D,
        "error_misalignment": 2 * float((A * A).sum()) / D ** 2,
        "error_variance": float(torch.trace(A)) ** 2 / D ** 2,
    }
    terms["predicted_test_loss"] = sum(terms.values())
    return terms


def beta_alignment(W: torch.Tensor, beta: torch.Tensor) -> float:
    """How much of M = mean_i w_i w_i^T lies along the teacher direction beta, relative to an
    isotropic M: (beta^T M beta / |beta|^2) / (tr M / D); 1 for isotropic weights, D when every
    w_i is parallel to beta."""
    _, M = sufficient_statistics(W)
    beta = beta.to(device=M.device, dtype=torch.float64)
    return float(beta @ M @ beta / (beta @ beta) / torch.trace(M) * M.shape[0])

"""Kernel alignment and centered kernel alignment (CKA), as pure functions.

- `kernel_alignment(K, Y)`: <HKH, HYY^TH>_F / (||HKH||_F ||HYY^TH||_F), Cortes et al. 2012, with
  H = I - 11^T/n; double centering done in O(n^2) without forming H. (Kumar et al.'s code centers
  along one axis only; we center both, as the definition does.)
- `linear_cka`, `rbf_cka`: Kornblith et al. 2019; `debiased=True` uses the unbiased HSIC estimator
  of Song et al. 2012; `minibatch_cka` accumulates unbiased HSIC over minibatches
  (Nguyen, Raghu & Kornblith 2021).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

EPS = 1e-12


class SimilarityError(ValueError):
    """Input on which the similarity is undefined (too few points, a constant representation)."""


def _as2d(X: Tensor) -> Tensor:
    X = torch.as_tensor(X).to(torch.float64)
    return X.reshape(X.shape[0], -1)


def _check_n(n: int, what: str, minimum: int = 4) -> None:
    if n < minimum:
        raise SimilarityError(f"{what} needs at least {minimum} examples, got {n}")


def center_kernel(K: Tensor) -> Tensor:
    """HKH in O(n^2): subtract row and column means, add back the grand mean."""
    K = torch.as_tensor(K).to(torch.float64)
    return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()


def target_kernel(Y: Tensor, n_classes: int | None = None) -> Tensor:
    """YY^T, with integer labels turned into one-hot rows."""
    Y = torch.as_tensor(Y)
    if Y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        Y = torch.nn.functional.one_hot(Y.long(), n_classes or int(Y.max()) + 1)
    Y = _as2d(Y)
    return Y @ Y.T


def kernel_alignment(K: Tensor, Y: Tensor, n_classes: int | None = None) -> float:
    """Centered kernel alignment of K (n x n) with the target kernel YY^T; Y is integer labels
    (one-hot encoded) or targets (n,) / (n, k)."""
    K = torch.as_tensor(K).to(torch.float64)
    _check_n(K.shape[0], "kernel alignment")
    return _aligned(center_kernel(K), center_kernel(target_kernel(Y, n_classes)))


def kernel_kernel_alignment(K1: Tensor, K2: Tensor) -> float:
    """Centered alignment of two kernels on the same points (1 - this is the kernel distance)."""
    _check_n(K1.shape[0], "kernel alignment")
    return _aligned(center_kernel(K1), center_kernel(K2))


def _aligned(Kc: Tensor, Lc: Tensor) -> float:
    nk, nl = Kc.norm(), Lc.norm()
    scale = max(float(Kc.abs().max()), float(Lc.abs().max()), EPS)
    if nk <= EPS * scale * Kc.shape[0] or nl <= EPS * scale * Lc.shape[0]:
        which = "the kernel" if nk <= EPS * scale * Kc.shape[0] else "the target"
        raise SimilarityError(f"{which} is constant after centering (zero self-similarity); "
                              "alignment is undefined")
    return float((Kc * Lc).sum() / (nk * nl))


def hsic(K: Tensor, L: Tensor, unbiased: bool = False) -> Tensor:
    """HSIC of two kernels: biased tr(KHLH)/(n-1)^2, or the unbiased estimator of Song et al. 2012:
    [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)), K~ = K with zero diagonal."""
    K, L = torch.as_tensor(K).to(torch.float64), torch.as_tensor(L).to(torch.float64)
    n = K.shape[0]
    if not unbiased:
        return (center_kernel(K) * L).sum() / (n - 1) ** 2
    _check_n(n, "the unbiased HSIC")
    Kt = K - torch.diag(torch.diagonal(K))
    Lt = L - torch.diag(torch.diagonal(L))
    ones_K, ones_L = Kt.sum(1), Lt.sum(1)
    term = (Kt * Lt).sum() + Kt.sum() * Lt.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ones_K @ ones_L)
    return term / (n * (n - 3))


def cka_from_kernels(K: Tensor, L: Tensor, debiased: bool = False) -> float:
    _check_n(K.shape[0], "CKA", 4 if debiased else 2)
    kl, kk, ll = hsic(K, L, debiased), hsic(K, K, debiased), hsic(L, L, debiased)
    if kk <= EPS * max(float(K.abs().max()), EPS) or ll <= EPS * max(float(L.abs().max()), EPS):
        raise SimilarityError("a representation is constant across examples (zero self-similarity); "
                              "CKA is undefined")
    return float(kl / torch.sqrt(kk * ll))


def linear_cka(X: Tensor, Y: Tensor, debiased: bool = False) -> float:
    """Linear CKA of representations X (n, p) and Y (n, q): CKA(XX^T, YY^T). The biased form is
    computed in feature space, ||Y_c^T X_c||^2 / (||X_c^T X_c|| ||Y_c^T Y_c||), with centered columns."""
    X, Y = _as2d(X), _as2d(Y)
    if X.shape[0] != Y.shape[0]:
        raise SimilarityError(f"X and Y must have the same number of examples ({X.shape[0]} vs {Y.shape[0]})")
    if debiased:
        return cka_from_kernels(X @ X.T, Y @ Y.T, debiased=True)
    _check_n(X.shape[0], "CKA", 2)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    xx, yy = (Xc.T @ Xc).norm(), (Yc.T @ Yc).norm()
    if xx <= EPS * max(float(X.abs().max()) ** 2, EPS) or yy <= EPS * max(float(Y.abs().max()) ** 2, EPS):
        raise SimilarityError("a representation is constant across examples (zero self-similarity); "
                              "CKA is undefined")
    return float((Yc.T @ Xc).norm() ** 2 / (xx * yy))


def rbf_kernel(X: Tensor, sigma: float | None = None, sigma_frac: float = 0.8) -> Tensor:
    """exp(-||x - x'||^2 / (2 sigma^2)); sigma defaults to sigma_frac times the median distance
    (Kornblith et al. 2019)."""
    X = _as2d(X)
    d2 = torch.cdist(X, X).pow(2)
    if sigma is None:
        off = d2[~torch.eye(len(X), dtype=torch.bool)]
        sigma = sigma_frac * float(off.sqrt().median()) if off.numel() else 1.0
        sigma = sigma if sigma > 0 else 1.0
    return torch.exp(-d2 / (2 * sigma ** 2))


def rbf_cka(X: Tensor, Y: Tensor, sigma_frac: float = 0.8, debiased: bool = False) -> float:
    return cka_from_kernels(rbf_kernel(X, sigma_frac=sigma_frac), rbf_kernel(Y, sigma_frac=sigma_frac), debiased)


def minibatch_cka(pairs: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Linear CKA accumulated over minibatches (X_b, Y_b) with unbiased HSIC (Nguyen et al. 2021)."""
    kl = kk = ll = 0.0
    count = 0
    for X, Y in pairs:
        X, Y = _as2d(X), _as2d(Y)
        K, L = X @ X.T, Y @ Y.T
        kl += float(hsic(K, L, True))
        kk += float(hsic(K, K, True))
        ll += float(hsic(L, L, True))
        count += 1
    if count == 0:
        raise SimilarityError("minibatch CKA got no batches")
    if kk <= 0 or ll <= 0:
        raise SimilarityError("a representation is constant across examples; CKA is undefined")
    return kl / (kk * ll) ** 0.5

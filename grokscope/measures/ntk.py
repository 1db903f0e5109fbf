"""The empirical neural tangent kernel, as pure functions (Kumar et al. 2024 read grokking as the
move from lazy, kernel-like training to feature learning; this is the kernel they mean).

K(x, x') = sum over trainable parameters of df(x)/dtheta . df(x')/dtheta, for an output f chosen
by `output`:

    "scalar"   the model's single output (regression)
    "trace"    the sum over logits: K = sum_c J_c J_c^T (default for classifiers)
    int c      logit c
    "correct"  the logit of each example's label (`labels` required)
    Tensor R   fixed projections of the logits, R (m, n_classes): K = sum_m J_m J_m^T with
               f_m = R_m . f. With R Gaussian / sqrt(m), E[K] = the trace kernel: a cheap,
               label-free estimate of it (`random_projections`).

Three ways to compute it:
- `empirical_ntk` on a grokscope MLP uses its layer-wise structure, K = sum over layers of
  (G G^T) * (A A^T) (elementwise), with A the layer's input and G the output's gradient at its
  pre-activation, so no per-example gradient is ever stored;
- on any other model it stacks per-example Jacobians (torch.func, chunked to bound memory) and
  forms J J^T;
- `ntk_top_eigenvalues` never forms K: K v = J (J^T v) is a VJP then a JVP, handed to Lanczos
  (scipy `eigsh` on a `LinearOperator`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

Output = str | int | Tensor


class CommitteeModel(Protocol):
    """What `committee_ntk` needs of a committee machine f(x) = alpha/N sum_i phi(w_i . x):
    `blocks[0].mlp.W_in` (D, N), `phi_prime`, `alpha`, `width`; `ntk_method = "closed_form"`."""

    alpha: float
    width: int
    ntk_method: str

    def phi_prime(self, h: Tensor) -> Tensor: ...


class LayerwiseMLP(Protocol):
    """What the layer-wise NTK needs of an MLP: `blocks[i].mlp` with `W_in`, `b_in` (or None) and an
    elementwise `act`; `unembed.W_U`, `unembed.b_U`; `n_operands`, `d_input` (> 0: real inputs),
    `d_embed` (> 0: `embed.W_E`, else `one_hot(operands)`), `alpha`; `ntk_method = "layerwise"`."""

    alpha: float
    n_operands: int
    d_input: int
    d_embed: int
    ntk_method: str

    def one_hot(self, operands: Tensor) -> Tensor: ...


def random_projections(n_classes: int, m: int = 4, seed: int = 0) -> Tensor:
    """(m, n_classes) Gaussian projections scaled so that sum_m J_m J_m^T estimates the trace
    kernel without bias."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n_classes, generator=g, dtype=torch.float64) / math.sqrt(m)


def _output_selector(output: Output, n_classes: int, labels: Tensor | None, n: int,
                     dtype: torch.dtype, device: torch.device | None = None) -> Tensor | None:
    """(n, n_out, n_classes) weights that pick the outputs of each example, on `device`; None for
    "scalar"."""
    if isinstance(output, Tensor):  # fixed projections of the logits, (n_out, n_classes) or (n_classes,)
        w = output.to(device=device, dtype=dtype).reshape(-1, n_classes)
        return w.expand(n, *w.shape)
    if output == "scalar":
        return None
    if output == "trace":
        return torch.eye(n_classes, dtype=dtype, device=device).expand(n, n_classes, n_classes)
    if output == "correct":
        if labels is None:
            raise ValueError('output="correct" needs labels')
        return torch.nn.functional.one_hot(labels, n_classes).to(device=device, dtype=dtype)[:, None, :]
    if isinstance(output, int):
        if not 0 <= output < n_classes:
            raise ValueError(f"output logit {output} is outside 0..{n_classes - 1}")
        sel = torch.zeros(n, 1, n_classes, dtype=dtype, device=device)
        sel[:, 0, output] = 1.0
        return sel
    raise ValueError(f'unknown output {output!r}: use "scalar", "trace", "correct" or a logit index')


def _select(out: Tensor, sel: Tensor | None) -> Tensor:
    """Model outputs (n, C) or (n,) -> the chosen outputs (n, n_out)."""
    if sel is None:
        return out.reshape(out.shape[0], -1)
    return torch.einsum("nc,noc->no", out, sel)


def _prepare(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    model = copy.deepcopy(model) if dtype is not None else model
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def empirical_ntk(model: nn.Module, inputs: Tensor, output: Output = "trace", *,
                  inputs2: Tensor | None = None, labels: Tensor | None = None,
                  labels2: Tensor | None = None, dtype: torch.dtype | None = torch.float64,
                  method: str = "auto", memory_mb: float = 1024.0) -> Tensor:
    """The (n, n2) empirical NTK between `inputs` and `inputs2` (default: `inputs`).

    `method`: "auto" (what the model's `ntk_method` attribute names: "closed_form" for a
    `CommitteeModel`, "layerwise" for a `LayerwiseMLP`; else "jacobian"), "closed_form",
    "layerwise" or "jacobian". `dtype=None` keeps the model's dtype; float64 (the default) works
    on a copy. `memory_mb` bounds the Jacobian blocks held at once.
    """
    model = _prepare(model, dtype)
    if method == "auto":
        method = getattr(model, "ntk_method", "jacobian")
    if method == "closed_form":
        return committee_ntk(model, inputs, inputs2)
    if method == "layerwise":
        return _mlp_layerwise_ntk(model, inputs, output, labels, inputs2, labels2)
    if method != "jacobian":
        raise ValueError(f"unknown method {method!r}: auto, layerwise or jacobian")
    return _jacobian_ntk(model, inputs, output, labels, inputs2, labels2, memory_mb)


# ---------------------------------------------------------------- J J^T for any model

def _params(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}


def _jacobian_ntk(model, x1, output, y1, x2, y2, memory_mb) -> Tensor:
    params = _params(model)
    n_params = sum(p.numel() for p in params.values())
    first = next(iter(params.values()))
    dtype, device = first.dtype, first.device
    with torch.no_grad():
        n_classes = model(x1[:1]).reshape(1, -1).shape[1]
    same = x2 is None
    x2, y2 = (x1, y1) if same else (x2, y2)
    s1 = _output_selector(output, n_classes, y1, len(x1), dtype, device)
    s2 = _output_selector(output, n_classes, y2, len(x2), dtype, device)
    n_out = 1 if s1 is None else s1.shape[1]

    def f(p, x, sel):
        out = functional_call(model, p, (x[None],))
        return _select(out, None if sel is None else sel[None])[0]       # (n_out,)

    in_sel = None if s1 is None else 0
    jac_fn = vmap(jacrev(f), in_dims=(None, 0, in_sel))

    def jacobian(x, sel) -> Tensor:                                       # (chunk, n_out, P)
        jac = jac_fn(params, x, sel)
        return torch.cat([j.reshape(len(x), n_out, -1) for j in jac.values()], dim=2)

    bytes_per_row = n_out * n_params * torch.finfo(dtype).bits // 8
    chunk = max(1, int(memory_mb * 2 ** 20 / 2 / bytes_per_row))
    K = torch.zeros(len(x1), len(x2), dtype=dtype, device=device)
    blocks1 = [(i, x1[i:i + chunk], None if s1 is None else s1[i:i + chunk]) for i in range(0, len(x1), chunk)]
    blocks2 = blocks1 if same else [(j, x2[j:j + chunk], None if s2 is None else s2[j:j + chunk])
                                    for j in range(0, len(x2), chunk)]
    # keep the second side's Jacobians when they fit in the budget; otherwise recompute them
    keep = (len(x2) * bytes_per_row) <= memory_mb * 2 ** 20
    kept: dict[int, Tensor] = {}
    for i, xi, si in blocks1:
        Ji = jacobian(xi, si)
        if same and keep:
            kept[i] = Ji
        for j, xj, sj in blocks2:
            if same and j > i:
                break
            Jj = Ji if (same and j == i) else kept.get(j)
            if Jj is None:
                Jj = jacobian(xj, sj)
                if keep:
                    kept[j] = Jj
            block = torch.einsum("aop,bop->ab", Ji, Jj)
            K[i:i + len(Ji), j:j + len(Jj)] = block
            if same and j != i:
                K[j:j + len(Jj), i:i + len(Ji)] = block.T
    return K


# ---------------------------------------------------------------- closed forms

def committee_ntk(model, x1: Tensor, x2: Tensor | None = None) -> Tensor:
    """Kumar et al.'s committee machine f = alpha/N sum_i phi(w_i . x): only W trains, so
    K = (alpha/N)^2 (Phi'_1 Phi'_2^T) * (X_1 X_2^T), Phi'_{n,i} = phi'(w_i . x_n)."""
    W = model.blocks[0].mlp.W_in.detach()
    x1 = x1.to(W.dtype)
    x2 = x1 if x2 is None else x2.to(W.dtype)
    d1, d2 = model.phi_prime(x1 @ W), model.phi_prime(x2 @ W)
    return (model.alpha / model.width) ** 2 * (d1 @ d2.T) * (x1 @ x2.T)


# ---------------------------------------------------------------- the MLP's layer-wise form

def _mlp_layerwise_ntk(model, x1, output, y1, x2, y2) -> Tensor:
    """K = sum_l (sum_o G_l(x, o) . G_l(x', o)) * (a_{l-1}(x) . a_{l-1}(x')) for every weight
    matrix, the same without the input product for biases, and token-matching terms for
    embeddings; times alpha^2 (the centered predictor subtracts a constant: same kernel)."""
    same = x2 is None
    f1 = _mlp_factors(model, x1, output, y1)
    f2 = f1 if same else _mlp_factors(model, x2, output, y2)
    x2 = x1 if same else x2
    K = torch.zeros(len(x1), len(x2), dtype=f1["dtype"], device=f1["device"])
    for (G1, A1), (G2, A2) in zip(f1["weights"], f2["weights"]):
        gg = G1.flatten(1) @ G2.flatten(1).T
        K += gg if A1 is None else gg * (A1 @ A2.T)
    if "embed" in f1:
        (t1, g1), (t2, g2) = f1["embed"], f2["embed"]
        for p1 in range(t1.shape[1]):
            for p2 in range(t2.shape[1]):
                match = (t1[:, p1, None] == t2[None, :, p2]).to(K.dtype)
                K += match * (g1[:, :, p1].flatten(1) @ g2[:, :, p2].flatten(1).T)
    return K * model.alpha ** 2


def _mlp_factors(model, tokens, output, labels) -> dict:
    """Per layer: G (n, n_out, d_out), the output's gradient at the pre-activation, and A (n, d_in),
    the layer input (None for a bias)."""
    W_U = model.unembed.W_U
    dtype, device = W_U.dtype, W_U.device
    n = tokens.shape[0]
    sel = _output_selector(output, W_U.shape[1], labels, n, dtype, device)
    if sel is None:  # "scalar": every output of a regression model, summed in the kernel
        sel = torch.eye(W_U.shape[1], dtype=dtype, device=device).expand(n, -1, -1)
    with torch.no_grad():
        operands = tokens[:, : model.n_operands]
        if model.d_input > 0:
            a = tokens.flatten(1).to(dtype)
        elif model.d_embed > 0:
            a = model.embed.W_E[operands].flatten(1)
        else:
            a = model.one_hot(operands)
        inputs, derivs = [], []
        for block in model.blocks:
            layer = block.mlp
            z = a @ layer.W_in + (layer.b_in if layer.b_in is not None else 0)
            z_req = z.detach().requires_grad_(True)
            with torch.enable_grad():
                h = layer.act(z_req)
                d = torch.autograd.grad(h.sum(), z_req)[0]  # elementwise activations: h'(z)
            inputs.append(a)
            derivs.append(d)
            a = layer.act(z)
        out = {"dtype": dtype, "device": device, "weights": []}
        if W_U.requires_grad:
            out["weights"].append((sel, a))                                     # readout weight
            if model.unembed.b_U is not None:
                out["weights"].append((sel, None))                             # readout bias
        delta = torch.einsum("noc,dc->nod", sel, W_U) * derivs[-1][:, None, :]
        for i in range(len(model.blocks) - 1, -1, -1):
            layer = model.blocks[i].mlp
            out["weights"].append((delta, inputs[i]))
            if layer.b_in is not None:
                out["weights"].append((delta, None))
            back = torch.einsum("nod,ed->noe", delta, layer.W_in)
            if i > 0:
                delta = back * derivs[i - 1][:, None, :]
        if model.d_embed > 0:
            g = back.reshape(n, back.shape[1], model.n_operands, model.d_embed)  # (n, n_out, pos, d)
            out["embed"] = (operands, g)
    return out


# ---------------------------------------------------------------- matrix-free products and Lanczos

def ntk_matvec(model: nn.Module, inputs: Tensor, output: Output = "trace", *,
               labels: Tensor | None = None, dtype: torch.dtype | None = torch.float64) -> Callable[[Tensor], Tensor]:
    """A function v (n,) -> K v without forming K: a VJP (J^T v) then a JVP (J u) per output."""
    model = _prepare(model, dtype)
    params = _params(model)
    first = next(iter(params.values()))
    pdtype, device = first.dtype, first.device
    with torch.no_grad():
        n_classes = model(inputs[:1]).reshape(1, -1).shape[1]
    sel = _output_selector(output, n_classes, labels, len(inputs), pdtype, device)
    n_out = 1 if sel is None else sel.shape[1]

    def F(p):
        return _select(functional_call(model, p, (inputs,)), sel)            # (n, n_out)

    _, pullback = vjp(F, params)

    def matvec(v: Tensor) -> Tensor:
        v = v.to(device=device, dtype=pdtype)
        total = torch.zeros(len(inputs), dtype=pdtype, device=device)
        for o in range(n_out):
            cot = torch.zeros(len(inputs), n_out, dtype=pdtype, device=device)
            cot[:, o] = v
            (u,) = pullback(cot)
            _, Ju = jvp(F, (params,), (u,))
            total += Ju[:, o]
        return total

    return matvec


def ntk_top_eigenvalues(model: nn.Module, inputs: Tensor, k: int = 10, output: Output = "trace", *,
                        labels: Tensor | None = None, dtype: torch.dtype | None = torch.float64,
                        tol: float = 1e-6, return_vectors: bool = False):
    """The k largest eigenvalues of the empirical NTK on `inputs`, by Lanczos on K v products
    (scipy.sparse.linalg.eigsh), never forming K. Descending order."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = len(inputs)
    if not 0 < k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    mv = ntk_matvec(model, inputs, output, labels=labels, dtype=dtype)
    op = LinearOperator((n, n), matvec=lambda v: mv(torch.from_numpy(np.asarray(v).ravel())).cpu().numpy(),
                        dtype=np.float64)
    values, vectors = eigsh(op, k=k, which="LA", tol=tol)
    order = np.argsort(values)[::-1]
    return (values[order], vectors[:, order]) if return_vectors else values[order]


def effective_rank(eigenvalues: np.ndarray | Tensor) -> float:
    """exp of the entropy of the normalized spectrum (Roy & Vetterli 2007)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    if lam.sum() <= 0:
        return 0.0
    p = lam / lam.sum()
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def ntk_reference(model: nn.Module, inputs: Tensor, output: Output = "trace", *,
                  labels: Tensor | None = None, dtype: torch.dtype | None = torch.float64) -> Tensor:
    """The slow, obviously-correct NTK: one backward pass per example and output, stacked into
    J, then J J^T. For tests and benchmarks."""
    model = _prepare(model, dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    pdtype = params[0].dtype
    with torch.no_grad():
        n_classes = model(inputs[:1]).reshape(1, -1).shape[1]
    sel = _output_selector(output, n_classes, labels, len(inputs), pdtype, params[0].device)
    rows = []
    for i in range(len(inputs)):
        out = _select(model(inputs[i:i + 1]), None if sel is None else sel[i:i + 1])[0]
        for o in range(out.shape[0]):
            grads = torch.autograd.grad(out[o], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                   for g, p in zip(grads, params)]))
    n_out = len(rows) // len(inputs)
    J = torch.stack(rows).view(len(inputs), n_out, -1)
    return torch.einsum("aop,bop->ab", J, J)


# ---------------------------------------------------------------- alignment along training

def _targets(y: Tensor, n_classes: int | None) -> Tensor:
    """Labels -> a float64 target matrix: one-hot for classes, the values for regression."""
    if y.is_floating_point():
        return y.to(torch.float64).reshape(len(y), -1)
    return torch.nn.functional.one_hot(y, n_classes).to(torch.float64)


def kernel_regression(K_train: Tensor, K_cross: Tensor, Y: Tensor, ridge: float = 1e-6) -> Tensor:
    """The lazy (kernel-regime) predictor: ridge regression on the centered train targets with
    kernel K, ridge relative to the mean diagonal. K_cross (n_test, n_train) -> (n_test, outputs)."""
    mean = Y.mean(0)
    lam = ridge * float(torch.diagonal(K_train).mean())
    eye = torch.eye(len(K_train), dtype=K_train.dtype, device=K_train.device)
    coef = torch.linalg.solve(K_train + lam * eye, Y - mean)
    return K_cross @ coef + mean


def alignment_statistics(K: Tensor, n_train: int, y_train: Tensor, y_test: Tensor,
                         n_classes: int | None, K0: Tensor | None = None,
                         ridge: float = 1e-6) -> dict[str, float]:
    """What Kumar et al. 2024 track of the NTK K on [train; test] points (K0: at initialization):

    - alignment_train / alignment_test: centered kernel-target alignment (`kernel_alignment`);
    - target_power_top{1,10,100}: the share of the centered train targets in the top 1/10/100
      eigenvectors of the centered train kernel;
    - kernel_distance: 1 - the kernel-kernel alignment of K and K0 (0: the kernel has not moved);
    - kernel_regression_test_loss / _acc: the lazy baseline, kernel regression with K.
    """
    from grokscope.measures.similarity import (
        SimilarityError,
        center_kernel,
        kernel_alignment,
        kernel_kernel_alignment,
    )

    K_tr, K_te, K_cross = K[:n_train, :n_train], K[n_train:, n_train:], K[n_train:, :n_train]
    regression = y_train.is_floating_point()
    out: dict[str, float] = {}
    for name, Ks, ys in (("train", K_tr, y_train), ("test", K_te, y_test)):
        try:
            out[f"alignment_{name}"] = kernel_alignment(Ks, ys, None if regression else n_classes)
        except SimilarityError:
            out[f"alignment_{name}"] = float("nan")
    Y = _targets(y_train, n_classes)
    Yc = Y - Y.mean(0)
    _, vecs = torch.linalg.eigh(center_kernel(K_tr))
    power = (vecs.flip(1).T @ Yc).pow(2).sum(1)
    total = float(Yc.pow(2).sum()) or 1.0
    for k in (1, 10, 100):
        out[f"target_power_top{k}"] = float(power[:k].sum()) / total
    try:
        out["kernel_distance"] = 1.0 - kernel_kernel_alignment(K, K if K0 is None else K0)
    except SimilarityError:
        out["kernel_distance"] = float("nan")
    pred = kernel_regression(K_tr, K_cross, Y, ridge)
    out["kernel_regression_test_loss"] = float((pred - _targets(y_test, n_classes)).pow(2).mean())
    if not regression:
        out["kernel_regression_test_acc"] = float((pred.argmax(1) == y_test).double().mean())
    return out


def param_movement(theta: Tensor, theta0: Tensor) -> float:
    """|theta - theta0| / |theta0|: how far the parameters moved from initialization."""
    theta, theta0 = theta.to(torch.float64), theta0.to(torch.float64)
    return float((theta - theta0).norm() / theta0.norm())

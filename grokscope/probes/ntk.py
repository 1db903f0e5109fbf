"""`ntk_spectrum` and `ntk_alignment`: the empirical NTK along training (Kumar et al. 2024).

The kernel is computed on a fixed evaluation subset: the first `n` examples of the stored train
(and/or test) split, which is already shuffled. Kernel choice (`kernel` parameter):
"trace" (sum over logits), "projected" (m fixed Gaussian projections of the logits, an unbiased
label-free estimate of the trace kernel that costs m outputs instead of n_classes), "correct"
(the label's logit; note it puts the labels into the kernel), or "scalar" for regression.
"auto": "trace" for models with a layer-wise NTK (the MLP: cheap), "projected" otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from grokscope.measures.losses import DTYPES
from grokscope.measures.ntk import (
    alignment_statistics,
    effective_rank,
    empirical_ntk,
    param_movement,
    random_projections,
)
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, register_probe
from grokscope.specs import FigureSpec, Panel

KERNELS = ("auto", "trace", "projected", "correct", "scalar")
# `n` = 0: every point of each split up to this many where the kernel is cheap (a closed-form or
# layer-wise NTK), else 128 (per-example Jacobians). Alignment on few points is biased upward
# and kernel regression on few points generalizes worse than the lazy network it stands for.
CHEAP_N, JACOBIAN_N = 1000, 128


def points_per_split(model, n: int) -> int:
    if n > 0:
        return n
    return CHEAP_N if getattr(model, "ntk_method", "") in ("closed_form", "layerwise") else JACOBIAN_N


def resolve_kernel(model, params: dict, n_classes: int, n_outputs: int):
    """The kernel's output selection; `n_outputs` is the model's output width (the number of
    classes, or the target vectors' width for `target_mse`)."""
    kind = params["kernel"]
    if kind == "auto":
        kind = "scalar" if n_classes == 0 else "trace" if getattr(model, "ntk_method", "") == "layerwise" else "projected"
    if kind == "projected":
        return random_projections(n_outputs, params["n_projections"], seed=0), kind
    return kind, kind


def subset(task, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "both":
        xa, ya = subset(task, "train", n // 2)
        xb, yb = subset(task, "test", n - n // 2)
        return torch.cat([xa, xb]), torch.cat([ya, yb])
    x, y = getattr(task, f"{split}_inputs"), getattr(task, f"{split}_labels")
    return x[:n], y[:n]


def checkpoint_ntk(ctx: ProbeContext, model, x, y, params) -> torch.Tensor:
    """The kernel in float64; the Jacobians in `params["dtype"]` (float32 by default: the
    per-example Jacobians of a transformer are several times faster to form than in float64
    (bench/ntk.py), and the
    eigenvalues and alignments need no more than float32's 1e-6)."""
    x = x.to(ctx.device)
    with torch.no_grad():
        n_outputs = model(x[:1]).reshape(1, -1).shape[1]
    output, _ = resolve_kernel(model, params, ctx.task.n_classes, n_outputs)
    dtype = DTYPES[params["dtype"]]
    return empirical_ntk(model, x, output, labels=y.to(ctx.device), dtype=dtype).cpu().double()


def _check(params) -> bool | str:
    if params["kernel"] not in KERNELS:
        return f"kernel must be one of {', '.join(KERNELS)}"
    if params["dtype"] not in ("float32", "float64"):
        return "dtype must be float32 or float64"
    return True


@register_probe
class NTKSpectrumProbe(Probe):
    name = "ntk_spectrum"
    needs = ("outputs", "parameters")
    version = "1"
    description = "top eigenvalues, trace and effective rank of the empirical NTK on an evaluation subset"
    defaults = {"split": "train", "n": 256, "k": 10, "kernel": "auto", "n_projections": 4, "dtype": "float32"}

    def applies_to(self, run):
        return _check(self.params)

    def measure(self, ctx: ProbeContext) -> ProbeResult:
        x, y = subset(ctx.task, self.params["split"], self.params["n"])
        K = checkpoint_ntk(ctx, ctx.model, x, y, self.params)
        eig = torch.linalg.eigvalsh(K).flip(0).numpy()
        out = {f"ntk_top{i + 1}": float(eig[i]) for i in range(min(self.params["k"], len(eig)))}
        out["ntk_trace"] = float(np.trace(K.numpy()))
        out["ntk_effective_rank"] = effective_rank(eig)
        return ProbeResult(out, {"eigenvalues": eig})

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(
            Panel(prefix="ntk_top", max_lines=5, columns=("ntk_trace",), logy=True, title="NTK eigenvalues"),
            Panel(columns=("ntk_effective_rank",), title="effective rank")))]


@register_probe
class NTKAlignmentProbe(Probe):
    name = "ntk_alignment"
    needs = ("outputs", "parameters")
    description = "NTK-target alignment, kernel distance to init, parameter movement, lazy kernel-regression baseline"
    version = "2"
    defaults = {"n": 0, "kernel": "auto", "n_projections": 4, "ridge": 1e-6, "dtype": "float32"}

    def applies_to(self, run):
        ok = _check(self.params)
        if ok is True:  # how many points the figure says it used
            n = self.params["n"] or (CHEAP_N if run.config.model.name in ("mlp", "committee") else JACOBIAN_N)
            task = run.task
            self._points = f"{min(n, len(task.train_labels)):,} train + {min(n, len(task.test_labels)):,} test points"
        return ok

    def _kernels(self, ctx: ProbeContext, model) -> dict[str, torch.Tensor]:
        n = points_per_split(model, self.params["n"])
        xtr, ytr = subset(ctx.task, "train", n)
        xte, yte = subset(ctx.task, "test", n)
        x = torch.cat([xtr, xte])
        K = checkpoint_ntk(ctx, model, x, torch.cat([ytr, yte]), self.params)
        return {"K": K, "ntr": len(xtr), "ytr": ytr, "yte": yte}

    def run_inputs(self, ctx: ProbeContext) -> dict[str, str]:
        """The initial checkpoint (the kernel and the parameters' movement are measured from it), by content."""
        return {"first": ctx.checkpoint_hash(ctx.run.steps[0])}

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        data = self._kernels(ctx, ctx.model)
        data0 = data if ctx.step == ctx.run.steps[0] else ctx.run_memo(
            f"ntk_alignment:K0:{self.cache_key()}", lambda: self._kernels(ctx, ctx.first))
        stats = alignment_statistics(data["K"], data["ntr"], data["ytr"], data["yte"],
                                     ctx.task.n_classes or None, data0["K"], self.params["ridge"])
        theta = torch.cat([p.detach().flatten().double() for p in ctx.model.parameters()])
        theta0 = ctx.run_memo("theta0", lambda: torch.cat([p.detach().flatten().double()
                                                           for p in ctx.first.parameters()]))
        lazy = {k: stats.pop(k) for k in list(stats) if k.startswith("kernel_regression")}
        return {**stats, "param_movement": param_movement(theta, theta0), **lazy,
                "n_train_points": data["ntr"], "n_test_points": len(data["yte"])}

    def points_label(self) -> str:
        n = self.params["n"]
        return getattr(self, "_points", None) or (f"{n} points per split" if n > 0 else "n = auto")

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(
            Panel(columns=("alignment_train", "alignment_test", "kernel_distance", "target_power_top10"),
                  labels=(("alignment_train", "alignment, train"), ("alignment_test", "alignment, test"),
                          ("kernel_distance", "kernel distance from init"),
                          ("target_power_top10", "target power in top 10")),
                  title=f"NTK-target alignment ({self.points_label()})", logy=False),
            Panel(columns=("param_movement", "kernel_regression_test_loss"),
                  labels=(("param_movement", "parameter movement"),
                          ("kernel_regression_test_loss", "lazy baseline: test loss")),
                  title="movement and lazy baseline")))]

"""The local learning coefficient (LLC) of singular learning theory, estimated with SGLD localized
at a checkpoint's weights w* (Lau et al. 2023, "Quantifying degeneracy in singular models via
the learning coefficient"; devinterp's implementation):

    λ̂(w*) = nβ · ( E_{w ~ p_γ,β(w | w*)} [L_n(w)] − L_n(w*) )

where L_n is the mean training loss over the n training examples, nβ the inverse temperature
times n, and the expectation is over SGLD draws from the tempered posterior localized at w* by a
Gaussian of strength γ:

    Δw = (ε/2) · ( nβ ∇L_m(w) + γ (w − w*) ) + N(0, ε)          (L_m: a minibatch's mean loss)

The sampler is devinterp's (`pip install grokscope[llc]`, imported only here and only when an
estimate is made); L_n(w*) is computed here on the full training set. `llc_diagnostics` reads
the loss traces and says what makes an estimate untrustworthy. Everything returned is numbers
and numpy arrays.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

INSTALL = "the llc probe needs devinterp: pip install 'grokscope[llc]' (devinterp 1.3)"

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SGLDSettings:
    """SGLD's step size ε (`epsilon`), inverse temperature nβ (`nbeta`; 0: devinterp's default
    m / ln m for minibatch size m), localization γ (`gamma`), `chains` independent chains of
    `burnin` discarded steps then `draws` kept ones, minibatches of `batch_size` training examples
    (0: the full training set), and a `seed` (chain c uses seed + c). Defaults: the setting
    `grokscope llc-calibrate` found stable on a grokking MLP (docs/probes/llc.md): ε 3e-4, nβ
    devinterp's default m / ln m, γ 100, minibatches of 128, 4 chains of 200 + 200 steps.
    (devinterp's grokking example, ε 3e-3, nβ 2, γ 5, left every trace of that run rising.)"""

    epsilon: float = 3e-4
    nbeta: float = 0.0
    gamma: float = 100.0
    chains: int = 4
    draws: int = 200
    burnin: int = 200
    batch_size: int = 128
    seed: int = 0

    def resolved_nbeta(self, n: int) -> float:
        m = min(self.batch_size, n) if self.batch_size else n
        return self.nbeta if self.nbeta > 0 else (m / math.log(m) if m > 1 else 1.0)

    def as_dict(self) -> dict:
        return asdict(self)


def default_nbeta(n: int) -> float:
    """n / ln n: the inverse temperature of Watanabe's WBIC, devinterp's default."""
    return n / math.log(n)


def full_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> float:
    """L_n(w*): the mean loss over all of `inputs`."""
    with torch.no_grad():
        return float(loss_fn(model(inputs), targets))


def estimate_llc(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn,
                 settings: SGLDSettings = SGLDSettings()) -> dict:
    """λ̂ at the model's current weights, from `settings.chains` SGLD chains run by devinterp.

    Returns `mean` and `std` over chains, `per_chain` (chains,), `trace` (chains, draws) of the
    minibatch losses after burn-in, `init_loss` L_n(w*), and the `nbeta` used. A chain whose loss
    became NaN is kept as NaN (its trace up to there is lost); `mean` and `std` are over the
    finite chains (NaN when none is). The model is not modified (devinterp samples a copy).
    """
    try:
        from devinterp.optim.sgld import SGLD
        from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    except ImportError:
        raise ImportError(INSTALL) from None
    n = len(inputs)
    nbeta = settings.resolved_nbeta(n)
    init_loss = full_loss(model, inputs, targets, loss_fn)
    batch = min(settings.batch_size, n) if settings.batch_size else n

    def evaluate(m, data):
        x, y = data
        return loss_fn(m(x), y)

    per_chain = np.full(settings.chains, np.nan)
    trace = np.full((settings.chains, settings.draws), np.nan)
    for c in range(settings.chains):
        loader = Batches(inputs, targets, batch, seed=settings.seed + c)
        try:
            with warnings.catch_warnings():  # devinterp's notes on the nbeta passed, batches cycled
                warnings.simplefilter("ignore")
                result = estimate_learning_coeff_with_summary(
                    model, loader=loader, evaluate=evaluate, sampling_method=SGLD,
                    optimizer_kwargs=dict(lr=settings.epsilon, nbeta=nbeta, localization=settings.gamma),
                    num_chains=1, num_draws=settings.draws, num_burnin_steps=settings.burnin,
                    init_loss=init_loss if init_loss != 0 else 1e-300, seed=settings.seed + c,
                    verbose=False, online=False)
        except RuntimeError as e:  # devinterp stops a chain whose loss became NaN
            if "NaN" not in str(e):
                raise
            continue
        trace[c] = np.asarray(result["loss/trace"], dtype=np.float64).reshape(-1)[: settings.draws]
        per_chain[c] = nbeta * (trace[c].mean() - init_loss)
    ok = per_chain[np.isfinite(per_chain)]
    return {"mean": float(ok.mean()) if ok.size else float("nan"),
            "std": float(ok.std(ddof=1)) if ok.size > 1 else float("nan"),
            "per_chain": per_chain, "trace": trace, "init_loss": init_loss, "nbeta": nbeta}


class Batches(torch.utils.data.DataLoader):
    """Minibatches of (inputs, targets) by index slicing, reshuffled each pass (seeded): what
    devinterp iterates over, without a DataLoader's per-example collation (which, for a full
    batch of 1,000 examples, costs more than the SGLD step itself). A DataLoader subclass only
    so that devinterp reads its `batch_size`."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int = 0):
        super().__init__(torch.utils.data.TensorDataset(inputs, targets), batch_size=batch_size)
        self.inputs, self.targets = inputs, targets
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def __iter__(self):
        n = len(self.inputs)
        if self.batch_size >= n:
            yield self.inputs, self.targets
            return
        order = torch.randperm(n, generator=self.generator)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.inputs[idx], self.targets[idx]


SPIKE = 100.0       # a draw whose excess loss is 100x the chain's mean excess (second half) is a spike
DRIFT = 0.25        # the trace's mean moved by more than 25% of its excess between its first and last quarter
DRIFT_T = 3.0       # ... by more than 3 standard errors of that move over the chains (not chance)


def llc_diagnostics(trace: np.ndarray, init_loss: float, per_chain: np.ndarray) -> list[str]:
    """What makes an estimate untrustworthy, one sentence each (empty when it is clean):
    a chain that diverged (NaN or infinite losses), loss spikes (a draw's excess loss over
    L_n(w*) more than 100x the chain's mean excess over its second half), a trace that has not flattened after
    burn-in (its mean over the last quarter of the draws differs from the first quarter's by more
    than a quarter of the excess, and by more than 3 standard errors over the chains), and a negative estimate (the sampler found lower loss than
    w*: w* is not a local minimum at this temperature, or ε is too large)."""
    trace = np.asarray(trace, dtype=np.float64)
    out = []
    bad = [c for c in range(len(trace)) if not np.isfinite(trace[c]).all() or not np.isfinite(per_chain[c])]
    if bad:
        out.append(f"{len(bad)} of {len(trace)} chains diverged (non-finite loss): lower epsilon")
    good = [c for c in range(len(trace)) if c not in bad]
    if not good:
        return out
    excess = trace[good] - init_loss
    scale = np.maximum(np.abs(excess[:, excess.shape[1] // 2:].mean(axis=1)), 1e-12)
    spiky = [good[i] for i in range(len(good)) if excess[i].max() > SPIKE * scale[i] and excess[i].max() > 1e-6]
    if spiky:
        out.append(f"loss spikes in {len(spiky)} of {len(trace)} chains (a draw above {SPIKE:g}x the chain's mean "
                   "excess loss): lower epsilon")
    q = max(trace.shape[1] // 4, 1)
    per_chain_drift = excess[:, -q:].mean(axis=1) - excess[:, :q].mean(axis=1)
    first, last = excess[:, :q].mean(), excess[:, -q:].mean()
    level = max(abs(excess.mean()), 1e-12)
    spread = per_chain_drift.std(ddof=1) / np.sqrt(len(good)) if len(good) > 1 else 0.0
    significant = spread == 0 or abs(per_chain_drift.mean()) > DRIFT_T * spread
    if trace.shape[1] >= 8 and abs(last - first) > DRIFT * level and significant:
        out.append(f"the loss trace has not flattened after burn-in (mean excess {first:.3g} in the first quarter "
                   f"of the draws, {last:.3g} in the last): more burn-in or draws, or a larger epsilon")
    mean = float(np.nanmean(per_chain[good]))
    if mean < 0:
        out.append(f"negative estimate ({mean:.3g}): the checkpoint is not a local minimum at this temperature; "
                   "raise nbeta or gamma, or lower epsilon")
    return out


__all__ = ["INSTALL", "SGLDSettings", "default_nbeta", "estimate_llc", "full_loss", "llc_diagnostics"]

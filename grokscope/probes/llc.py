"""`llc`: the local learning coefficient of each checkpoint (`measures.llc`; devinterp's SGLD).

On the run's training split, with the run's own loss (cross-entropy, MSE to one-hot, MSE to the
class targets, or MSE for regression), for any model grokscope trains. Needs the `llc` extra.
"""

from __future__ import annotations

import copy

import torch

from grokscope.measures.llc import INSTALL, SGLDSettings, estimate_llc, llc_diagnostics
from grokscope.measures.losses import loss_and_accuracy
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, register_probe
from grokscope.specs import FigureSpec, Headline, Panel
from grokscope.tasks import task_targets

SETTINGS = tuple(SGLDSettings().as_dict())


def devinterp_missing() -> str | None:
    try:
        import devinterp.slt.sampler  # noqa: F401
    except ImportError:
        return INSTALL
    return None


@register_probe
class LLCProbe(Probe):
    name = "llc"
    needs = ("outputs", "parameters")
    version = "1"
    description = ("local learning coefficient λ̂ = nβ (E[L_n(w)] − L_n(w*)) by SGLD localized at the checkpoint "
                   "(Lau et al. 2023; devinterp)")
    defaults = SGLDSettings().as_dict()

    def applies_to(self, run) -> bool | str:
        missing = devinterp_missing()
        if missing:
            return missing
        try:
            settings = self.settings()
        except (TypeError, ValueError) as e:
            return f"bad SGLD setting: {e}"
        if settings.chains < 1 or settings.draws < 1 or settings.epsilon <= 0 or settings.gamma < 0:
            return "chains and draws must be >= 1, epsilon > 0 and gamma >= 0"
        return True

    def settings(self) -> SGLDSettings:
        p = self.params
        return SGLDSettings(epsilon=float(p["epsilon"]), nbeta=float(p["nbeta"]), gamma=float(p["gamma"]),
                            chains=int(p["chains"]), draws=int(p["draws"]), burnin=int(p["burnin"]),
                            batch_size=int(p["batch_size"]), seed=int(p["seed"]))

    def measure(self, ctx: ProbeContext) -> ProbeResult:
        task, kind = ctx.task, ctx.run.config.train.loss
        targets = task_targets(task)

        def loss_fn(out, labels):
            return loss_and_accuracy(out, labels, kind, torch.float32, targets)[0]

        model = copy.deepcopy(ctx.model).requires_grad_(True)
        settings = self.settings()
        r = estimate_llc(model, task.train_inputs.to(ctx.device), task.train_labels.to(ctx.device), loss_fn,
                         settings)
        warnings = llc_diagnostics(r["trace"], r["init_loss"], r["per_chain"])
        scalars: dict[str, float | str] = {"llc_mean": r["mean"], "llc_std": r["std"], "llc_init_loss": r["init_loss"],
                                           "llc_nbeta": r["nbeta"]}
        scalars.update({f"llc_chain{i}": float(v) for i, v in enumerate(r["per_chain"])})
        scalars.update({f"llc_{k}": float(v) for k, v in settings.as_dict().items() if k != "nbeta"})  # the settings
        scalars["llc_warnings"] = "; ".join(warnings)
        return ProbeResult(scalars, {"loss_trace": r["trace"]})

    quiet = ("llc_chain", "llc_init_loss", "llc_nbeta", "llc_epsilon", "llc_gamma", "llc_draws", "llc_burnin",
             "llc_batch_size", "llc_seed", "llc_chains")

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(
            Panel(columns=("llc_mean",), bands=(("llc_mean", "llc_std"),), labels=(("llc_mean", "λ̂ (mean ± std over chains)"),),
                  title="local learning coefficient", ylabel="λ̂", logy=False),
            Panel(table="training", columns=("train_loss", "test_loss"),
                  labels=(("train_loss", "train loss"), ("test_loss", "test loss")), title="loss", ylabel="loss",
                  logy=True)))]

    def headlines(self) -> list[Headline]:
        return []

"""`kumar_stats`: the error terms of Kumar et al.'s committee machine (`measures.kumar`)."""

from __future__ import annotations

import torch

from grokscope.measures.kumar import beta_alignment, kumar_error_terms
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.specs import FigureSpec, Panel


@register_probe
class KumarStatsProbe(Probe):
    name = "kumar_stats"
    needs = ("grokscope-model",)
    version = "1"
    description = "linear-mode, misalignment and variance error terms of Kumar et al.'s committee machine"

    def applies_to(self, run):
        if run.config.model.name != "committee" or run.config.task.name != "polynomial":
            return "needs the committee model on the polynomial task (preset kumar)"
        return True

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        model = ctx.model
        W = model.blocks[0].mlp.W_in.detach()
        out = kumar_error_terms(W, model.init_W, ctx.task.beta, model.alpha, model.eps, model.centered)
        with torch.no_grad():
            pred = model(ctx.task.test_inputs.to(ctx.device)).double().cpu()
        out["test_loss"] = float((pred - ctx.task.test_labels.double()).pow(2).mean())
        out["beta_alignment"] = beta_alignment(W, ctx.task.beta)
        return out

    def figures(self) -> list[FigureSpec]:
        labels = (("error_linear", "linear-mode error"), ("error_misalignment", "misalignment"),
                  ("error_variance", "variance"), ("test_loss", "test loss (measured)"))
        return [FigureSpec(self.name, panels=(
            Panel(kind="stack", columns=("error_linear", "error_misalignment", "error_variance"),
                  lines=("test_loss",), labels=labels, title="test loss = sum of the error terms",
                  ylabel="MSE"),
            Panel(columns=("error_linear", "error_misalignment", "error_variance", "test_loss"), labels=labels,
                  title="the same, log scale", ylabel="MSE", logy=True)))]

"""`kumar_stats`: the error terms of Kumar et al.'s committee machine (`measures.kumar`)."""

from __future__ import annotations

import torch

from grokscope.measures.kumar import beta_alignment, kumar_error_terms
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.specs import FigureSpec, Panel


@register_probe
class KumarStatsProbe(Probe):
    name = "kumar_stats"
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
        return [FigureSpec(self.name, panels=(Panel(
            columns=("error_linear", "error_misalignment", "error_variance", "predicted_test_loss",
                     "test_loss"),
            title="test loss from sufficient statistics", logy=True),))]

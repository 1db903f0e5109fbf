"""`metrics` and `weights`: losses and norms recomputed from each checkpoint."""

from __future__ import annotations

import torch

from grokscope.measures.losses import loss_and_accuracy
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.specs import FigureSpec, Panel
from grokscope.tasks import task_targets


@register_probe
class MetricsProbe(Probe):
    name = "metrics"
    needs = ("outputs",)
    version = "1"
    description = "train/test loss and accuracy recomputed in float64 on the stored split"

    def figures(self) -> list[FigureSpec]:
        splits = (("train_loss", "train"), ("test_loss", "test"), ("train_acc", "train"), ("test_acc", "test"))
        return [FigureSpec(self.name, panels=(
            Panel(columns=("train_loss", "test_loss"), labels=splits, title="loss", ylabel="loss", logy=True),
            Panel(columns=("train_acc", "test_acc"), labels=splits, title="accuracy", ylabel="accuracy",
                  logy=False)))]

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        return split_losses(ctx)


def split_losses(ctx: ProbeContext) -> dict[str, float]:
    """Train and test loss and accuracy of the checkpoint, float64, on the stored split."""
    task, loss_kind = ctx.task, ctx.run.config.train.loss
    logits = ctx.logits("all")
    out = {}
    for split in ("train", "test"):
        idx = getattr(task, f"{split}_indices")
        loss, acc = loss_and_accuracy(logits[idx], task.all_labels[idx], loss_kind,
                                      torch.float64, task_targets(task))
        out[f"{split}_loss"], out[f"{split}_acc"] = loss.item(), acc.item()
    return out


@register_probe
class WeightsProbe(Probe):
    name = "weights"
    needs = ("parameters",)
    version = "1"
    description = "global L2 norm and sum of squares of all parameters, and each parameter's norm"

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        params = {n: p.detach().to(torch.float64) for n, p in ctx.model.named_parameters()}
        sum_sq = sum(float(p.pow(2).sum()) for p in params.values())
        out = {"weight_norm": sum_sq ** 0.5, "sum_sq_weights": sum_sq}
        out.update({f"norm.{n}": float(p.norm()) for n, p in params.items()})
        return out

    quiet = ("norm.",)

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(Panel(columns=("weight_norm",), labels=(("weight_norm", "L2 norm"),),
                                                    title="weight norm", ylabel="L2 norm of all parameters"),))]

"""`landscape` (formerly `lu`): a run's path over Omnigrok's loss-versus-weight-norm landscape (Liu, Michaud & Tegmark 2023).

Needs a landscape for the same task and model, made by `grokscope landscape` and passed as
`--param landscape.dir=DIR`. For each checkpoint: its weight norm (also as a multiple of w0, the
norm at default init), its own train and test loss, and the landscape's best train and test loss
at that norm (interpolated in log-log). A grokking run starts at a large norm (on the flat part of
the L, off the U) and generalizes when weight decay brings it down into the U's good band.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from grokscope.measures.landscape import interpolate_loglog, landscape_summary
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.probes.metrics import split_losses
from grokscope.specs import FigureSpec, Mark, Panel, Series
from grokscope.tables import landscape_table_path, read_landscape


@register_probe
class LandscapeProbe(Probe):
    name = "landscape"
    aliases = ("lu",)   # the name earlier scripts and notebooks use
    needs = ("parameters",)
    version = "3"
    description = "weight norm and losses placed on an Omnigrok landscape (--param landscape.dir=DIR)"
    defaults = {"dir": ""}

    def __init__(self, **params):
        if "landscape" in params and "dir" not in params:   # `--param lu.landscape=DIR`, the old spelling
            params["dir"] = params.pop("landscape")
        super().__init__(**params)

    def applies_to(self, run) -> bool | str:
        if not self.params["dir"]:
            return ("needs a landscape for this task and model: run `grokscope landscape --preset ... --out DIR` "
                    "and pass --param landscape.dir=DIR")
        if not landscape_table_path(self.params["dir"]).exists():
            return f"{landscape_table_path(self.params['dir'])} does not exist"
        return True

    def landscape(self) -> dict[str, np.ndarray]:
        return read_landscape(self.params["dir"])

    def run_inputs(self, ctx: ProbeContext) -> str:
        """The landscape's table, by content."""
        return hashlib.sha256(landscape_table_path(self.params["dir"]).read_bytes()).hexdigest()

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        land = ctx.run_memo(f"landscape:{self.params['dir']}", self.landscape)
        norm = float(torch.sqrt(sum(p.detach().double().pow(2).sum() for p in ctx.model.parameters())))
        w0 = float(np.nanmedian(land["norm"] / land["scale"]))
        out = {"weight_norm": norm, "norm_scale": norm / w0}
        own = split_losses(ctx)
        out["train_loss"], out["test_loss"] = own["train_loss"], own["test_loss"]
        out["landscape_train_loss"] = interpolate_loglog(norm, land["norm"], land["best_train_loss"])
        out["landscape_test_loss"] = interpolate_loglog(norm, land["norm"], land["best_test_loss"])
        # the good band is read against it (report/narrative.py)
        out["landscape_min_test_loss"] = float(np.nanmin(land["best_test_loss"]))
        return out

    def figures(self) -> list[FigureSpec]:
        land = self.landscape()
        norm = tuple(float(v) for v in land["norm"])
        summary = landscape_summary(land)
        labels = (("train_loss", "train loss"), ("test_loss", "test loss"), ("weight_norm", "weight norm"))
        return [FigureSpec(self.name, panels=(
            Panel(x="weight_norm", columns=("train_loss", "test_loss"), labels=labels, xlabel="weight norm",
                  ylabel="loss", logx=True, logy=True, title="the run over the L/U landscape", annotate_ends=True,
                  marks=landscape_marks(summary),
                  references=(Series("landscape: best train loss", norm,
                                     tuple(float(v) for v in land["best_train_loss"])),
                              Series("landscape: best test loss", norm,
                                     tuple(float(v) for v in land["best_test_loss"])))),
            Panel(columns=("weight_norm",), labels=labels, title="weight norm over training", ylabel="weight norm",
                  marks=tuple(Mark(m.value, "", axis="y", style=m.style) for m in landscape_marks(summary)))),
            width="two", height=2.9)]


def landscape_marks(summary: dict) -> tuple[Mark, ...]:
    """The L's threshold norm (train fits above it) and the U's test-loss minimum, as lines."""
    marks = [Mark(summary["test_min_norm"], "test-loss minimum", style="--")]
    if summary.get("threshold_norm"):
        marks.insert(0, Mark(summary["threshold_norm"], "train fits above"))
    return tuple(marks)


LUProbe = LandscapeProbe   # the class's name before the probe was renamed

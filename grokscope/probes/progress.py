"""`progress`: the restricted and excluded losses of Nanda et al. 2023 (section 5.1)."""

from __future__ import annotations

import torch.nn.functional as F

from grokscope.measures.restricted import restricted_and_excluded
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.probes.fourier import applies_to_modular, key_frequencies
from grokscope.specs import FigureSpec, Panel


@register_probe
class ProgressProbe(Probe):
    name = "progress"
    needs = ("outputs", "embeddings")
    version = "1"
    description = "restricted and excluded loss over the key frequencies (Nanda et al. 2023)"
    defaults = {"per_checkpoint_keys": False, "key_source": "embed"}

    def applies_to(self, run) -> bool | str:
        ok = applies_to_modular(run)
        if ok is not True:
            return ok
        if run.config.task.op != "add":
            return f"the a+b directions fit modular addition only (task.op is {run.config.task.op!r})"
        if run.config.train.loss != "cross_entropy":
            return "restricted/excluded losses are cross-entropies; this run trains with mse"
        return True

    def run_inputs(self, ctx: ProbeContext) -> list[int] | None:
        """The key frequencies, read from the final checkpoint (as `fourier`'s)."""
        return None if self.params["per_checkpoint_keys"] else key_frequencies(ctx, False, self.params["key_source"])

    def measure(self, ctx: ProbeContext) -> dict[str, float | str]:
        task = ctx.task
        keys = key_frequencies(ctx, self.params["per_checkpoint_keys"], self.params["key_source"])
        out = restricted_and_excluded(ctx.logits("all"), task.all_labels, task.train_indices, task.p, keys)
        logits = ctx.logits("all")
        out["train_loss"] = F.cross_entropy(logits[task.train_indices], task.train_labels).item()
        out["test_loss"] = F.cross_entropy(logits[task.test_indices], task.test_labels).item()
        out["key_frequencies"] = " ".join(map(str, keys))
        return out

    quiet = ("excluded_loss_k",)

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(Panel(
            columns=("train_loss", "test_loss", "restricted_loss", "excluded_loss"),
            labels=(("train_loss", "train"), ("test_loss", "test"), ("restricted_loss", "restricted"),
                    ("excluded_loss", "excluded")),
            title="progress measures", ylabel="loss (nats)", logy=True),), width="one", height=2.8)]

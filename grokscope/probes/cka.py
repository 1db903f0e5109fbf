"""`cka`: linear CKA of representations between each checkpoint and the final and first ones."""

from __future__ import annotations

import torch

from grokscope.measures.similarity import SimilarityError, linear_cka
from grokscope.probes.base import Probe, ProbeContext, register_probe


def default_hooks(model) -> list[str]:
    names = set(model.hook_dict)
    if not hasattr(model, "blocks"):  # a user's model: the activations its model.hooks map
        return sorted(names)
    wanted = ["hook_embed", "blocks.0.hook_resid_mid", f"blocks.{len(model.blocks) - 1}.mlp.hook_post"]
    return [n for n in wanted if n in names]


def representations(model, inputs: torch.Tensor, hooks: list[str]) -> dict[str, torch.Tensor]:
    """Activations at the answer (last) position, flattened per example, float64; the embedding
    of every position (at the last position it is the `=` token's, the same for all examples)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs, names_filter=lambda n: n in hooks)
    out = {}
    for name in hooks:
        act = cache[name]
        if act.dim() >= 3 and name != "hook_embed":
            act = act[:, -1]
        out[name] = act.reshape(act.shape[0], -1).to(torch.float64).cpu()
    return out


@register_probe
class CKAProbe(Probe):
    name = "cka"
    needs = ("activations",)
    version = "1"
    description = "linear CKA of hook-point activations against the final and the first checkpoint"
    defaults = {"hooks": "auto", "split": "test", "n": 512, "debiased": False}

    def run_inputs(self, ctx: ProbeContext) -> dict[str, str]:
        """The reference checkpoints, by content."""
        return {"final": ctx.checkpoint_hash(ctx.run.steps[-1]), "first": ctx.checkpoint_hash(ctx.run.steps[0])}

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        hooks = default_hooks(ctx.model) if self.params["hooks"] == "auto" else \
            [h.strip() for h in str(self.params["hooks"]).split(",") if h.strip()]
        x = getattr(ctx.task, f"{self.params['split']}_inputs")[: self.params["n"]].to(ctx.device)
        here = representations(ctx.model, x, hooks)
        out = {}
        for ref_name, step in (("final", ctx.run.steps[-1]), ("first", ctx.run.steps[0])):
            ref = ctx.run_memo(f"cka:{ref_name}:{self.cache_key()}",
                               lambda step=step: representations(ctx.reference(step), x, hooks))
            for hook in hooks:
                try:
                    out[f"cka_{ref_name}.{hook}"] = linear_cka(here[hook], ref[hook], self.params["debiased"])
                except SimilarityError:
                    out[f"cka_{ref_name}.{hook}"] = float("nan")
        return out

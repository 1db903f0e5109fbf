"""A complete user probe: the entropy of the answer position's attention (docs/writing-a-probe.md).

    grokscope analyze checkpoints/quickstart --probe docs/examples/attention_entropy.py:AttentionEntropy
"""

import torch

import grokscope


class AttentionEntropy(grokscope.Probe):
    name = "attention_entropy"
    version = "1"
    description = "mean entropy (nats) of each head's attention from the answer position"
    defaults = {"split": "test"}          # parameters: --param attention_entropy.split=train

    def applies_to(self, run):
        if run.config.model.name != "transformer":
            return "needs a transformer (it reads blocks.0.attn.hook_pattern)"
        return True

    def measure(self, ctx):
        inputs = getattr(ctx.task, f"{self.params['split']}_inputs")
        with torch.no_grad():
            _, cache = ctx.model.run_with_cache(inputs, names_filter="blocks.0.attn.hook_pattern")
        pattern = cache["blocks.0.attn.hook_pattern"][:, :, -1]          # (batch, head, key_pos)
        entropy = -(pattern * pattern.clamp_min(1e-12).log()).sum(-1)     # (batch, head)
        per_head = entropy.mean(0)
        out = {f"entropy_head{h}": float(e) for h, e in enumerate(per_head)}
        out["entropy_mean"] = float(per_head.mean())
        return out

    def figures(self):
        # data, not drawing: the report draws it (phases shaded, paper style) from the table
        return [grokscope.FigureSpec("attention_entropy", panels=(
            grokscope.Panel(prefix="entropy_head", title="entropy per head", ylabel="nats"),
            grokscope.Panel(columns=("entropy_mean",), title="mean over heads", ylabel="nats",
                            marks=(grokscope.Mark(0.0, "one-hot attention", axis="y"),)),
        ))]

    def headlines(self):
        return [grokscope.Headline("entropy_mean", "Mean attention entropy from the answer position")]

"""`patching`: activation patching over the trajectory, with TransformerLens's own tools.

Clean inputs `a b =` and corrupted ones `a b' =` (another b, so another answer). The metric is
the mean logit difference, logit[clean answer] - logit[corrupted answer]. Each head's output
(`blocks.L.attn.hook_z`, every position), each MLP's output at the answer position and the
residual stream at the corrupted operand's position are patched from the clean run into the
corrupted one (`transformer_lens.patching`), and the probe reports the fraction of the logit
difference each patch recovers: (patched - corrupted) / (clean - corrupted). Watching those
fractions over the checkpoints shows which components come to carry the answer, and when.
"""

from __future__ import annotations

import contextlib
import math

import torch

from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.specs import FigureSpec, Panel


def corrupted_pairs(task, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean tokens, corrupted tokens, clean answers, corrupted answers): n examples of the grid
    with the second operand replaced by another that changes the answer (the same at every step)."""
    g = torch.Generator().manual_seed(seed)
    inputs, labels = task.all_inputs, task.all_labels
    order = torch.randperm(len(inputs), generator=g)
    other = torch.randperm(len(inputs), generator=g)
    lookup = {tuple(row.tolist()): i for i, row in enumerate(inputs)}
    clean, corrupt = [], []
    for i, j in zip(order.tolist(), other.tolist()):
        row = inputs[i].clone()
        row[1] = inputs[j][1]
        k = lookup.get(tuple(row.tolist()))
        if k is not None and labels[k] != labels[i]:
            clean.append(i)
            corrupt.append(k)
        if len(clean) == n:
            break
    clean, corrupt = torch.tensor(clean), torch.tensor(corrupt)
    return inputs[clean], inputs[corrupt], labels[clean], labels[corrupt]


@contextlib.contextmanager
def quiet_patching():
    """transformer_lens.patching draws a tqdm bar per call: one per checkpoint would flood the
    analysis's own progress line."""
    import transformer_lens.patching as patching

    bar = patching.tqdm
    patching.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield patching
    finally:
        patching.tqdm = bar


@register_probe
class PatchingProbe(Probe):
    name = "patching"
    needs = ("activations",)
    version = "1"
    description = ("fraction of the clean-vs-corrupted logit difference recovered by patching each head, "
                   "MLP and the corrupted position's residual stream (transformer_lens.patching)")
    defaults = {"n": 64, "seed": 0}

    def applies_to(self, run) -> bool | str:
        if run.config.model.name != "transformer":
            return "patches attention heads: needs model.name=transformer"
        if run.config.task.name not in ("modular", "permutation"):
            return f"corrupts the second operand of `a b =`: needs a binary-operation task (task is {run.config.task.name!r})"
        return True

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        model = ctx.model.eval()
        clean, corrupt, ans, wrong = (t.to(ctx.device) for t in
                                      ctx.run_memo("patching:pairs", lambda: corrupted_pairs(
                                          ctx.task, int(self.params["n"]), int(self.params["seed"]))))
        rows = torch.arange(len(ans), device=ans.device)

        def logit_diff(logits: torch.Tensor) -> torch.Tensor:
            logits = logits.to(torch.float64)
            return (logits[rows, ans] - logits[rows, wrong]).mean()

        with torch.no_grad():
            clean_logits, cache = model.run_with_cache(clean)
            corrupt_ld = float(logit_diff(model(corrupt)))
            clean_ld = float(logit_diff(clean_logits))
            span = clean_ld - corrupt_ld
            recovered = (lambda v: (v - corrupt_ld) / span) if abs(span) > 1e-9 else (lambda v: v * math.nan)
            with quiet_patching() as patching:
                heads = patching.get_act_patch_attn_head_out_all_pos(model, corrupt, cache, logit_diff)
                mlps = patching.get_act_patch_mlp_out(model, corrupt, cache, logit_diff)
                resid = patching.get_act_patch_resid_pre(model, corrupt, cache, logit_diff)
        out = {"logit_diff_clean": clean_ld, "logit_diff_corrupted": corrupt_ld}
        for layer in range(heads.shape[0]):
            for head in range(heads.shape[1]):
                out[f"recovered_L{layer}H{head}"] = float(recovered(heads[layer, head]))
            out[f"recovered_L{layer}_mlp"] = float(recovered(mlps[layer, -1]))
            out[f"recovered_L{layer}_resid_b"] = float(recovered(resid[layer, 1]))
        return out

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(
            Panel(prefix="recovered_", title="logit difference recovered by patching",
                  ylabel="fraction recovered", logy=False, max_lines=10),
            Panel(columns=("logit_diff_clean", "logit_diff_corrupted"),
                  labels=(("logit_diff_clean", "clean"), ("logit_diff_corrupted", "corrupted")),
                  title="clean vs corrupted answer", ylabel="logit difference", logy=False)))]

"""Where a `nanda` training step's time goes in grokscope's trainer, before and after the fast
path's last change (attention scores from one table, MLP biases and ReLU in place), side by side.

Phases, timed separately over `--steps` steps of the same state: forward (train pairs, float64
loss), backward, optimizer (AdamW), test pass (the other 8,939 pairs, every step), metric
bookkeeping (accuracies, weight norm, the metrics row) and checkpoint I/O (one safetensors file,
amortized over the nanda schedule: 398 checkpoints in 40,000 steps). `before` is the previous
fast path, kept here verbatim as the reference.

    python bench/step_profile.py [--steps 30]
    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/step_profile.py
        (the same CPU with its AVX-512 kernels switched off)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import einsum

from grokscope import load_preset
from grokscope.files import save_tensors
from grokscope.models import build_model
from grokscope.models.transformer import Transformer
from grokscope.tasks import build_task
from grokscope.training.state import weight_norm


def before_tables(self, tokens):
    """The fast path as it was: per-example q.k and attention-weighted values as small matmuls,
    the MLP through its module (separate bias adds, out-of-place ReLU)."""
    block = self.blocks[0]
    attn = block.attn
    n_ctx = tokens.shape[1]
    table = self.embed.W_E[:, None, :] + self.pos_embed.W_pos[None, :n_ctx, :]
    kv_rows = (tokens * n_ctx + torch.arange(n_ctx, device=tokens.device)).flatten()
    k_tab = einsum(table, attn.W_K, "t p m, h m d -> t p h d").flatten(0, 1)
    v_tab = einsum(table, attn.W_V, "t p m, h m d -> t p h d").flatten(0, 1)
    k = k_tab.index_select(0, kv_rows).view(*tokens.shape, *k_tab.shape[1:])
    v = v_tab.index_select(0, kv_rows).view(*tokens.shape, *v_tab.shape[1:])
    last = tokens[:, -1]
    x_last = table[:, -1].index_select(0, last)
    q = einsum(table[:, -1], attn.W_Q, "t m, h m d -> t h d").index_select(0, last)
    scores = einsum(q, k, "b h d, b k h d -> b h k") / attn.scale
    z = einsum(scores.softmax(-1), v, "b h k, b k h d -> b h d")
    resid = x_last + z.flatten(1) @ attn.W_O.flatten(0, 1)
    resid = resid + block.mlp(resid)
    return resid[:, None, :]


def profile(steps: int, variant: str, folder: Path) -> dict[str, float]:
    config = load_preset("nanda")
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task)
    if variant == "before":
        model._one_layer_from_tables = before_tables.__get__(model, Transformer)
    opt = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                            betas=(config.optim.beta1, config.optim.beta2))
    params = [p for p in model.parameters()]
    x, y, tx, ty = task.train_inputs, task.train_labels, task.test_inputs, task.test_labels
    t = {k: 0.0 for k in ("forward", "backward", "optimizer", "test pass", "bookkeeping", "checkpoint I/O")}
    rows = []
    for step in range(steps + 2):
        clock = [time.perf_counter()]

        def lap(name):
            now = time.perf_counter()
            if step >= 2:  # two warm-up steps
                t[name] += now - clock[0]
            clock[0] = now

        logits = model(x)
        loss = F.cross_entropy(logits.double(), y)
        lap("forward")
        with torch.no_grad():
            test_logits = model(tx)
            test_loss = F.cross_entropy(test_logits.double(), ty)
        lap("test pass")
        rows.append((step, loss.item(), (logits.argmax(-1) == y).double().mean().item(), test_loss.item(),
                     (test_logits.argmax(-1) == ty).double().mean().item(), weight_norm(params)))
        lap("bookkeeping")
        if step >= 2 and step % 5 == 0:  # a checkpoint's write, counted as 1/100 of it per step below
            t0 = time.perf_counter()
            save_tensors(folder / f"{variant}_{step}.safetensors", model.state_dict(), {"step": str(step)})
            t["checkpoint I/O"] += (time.perf_counter() - t0) * 5 / 100  # 398 in 40,000 steps: 1 per ~100
        clock[0] = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        lap("backward")
        opt.step()
        lap("optimizer")
    per_step = {k: v / steps for k, v in t.items()}
    per_step["total"] = sum(per_step.values())
    per_step["losses"] = [(r[1], r[3]) for r in rows]
    return per_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = os.environ.get("ATEN_CPU_CAPABILITY") or ("avx512" if "avx512f" in flags else "avx2")
    print(f"nanda step, {args.steps} steps after 2 warm-up, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, kernels: {isa} (torch reports {torch.backends.cpu.get_cpu_capability()})")
    with tempfile.TemporaryDirectory() as tmp:
        results = {v: profile(args.steps, v, Path(tmp)) for v in ("before", "after")}
    print(f"{'phase':<16}{'before ms':>10}{'after ms':>10}{'ratio':>8}")
    for name in ("forward", "backward", "optimizer", "test pass", "bookkeeping", "checkpoint I/O", "total"):
        b, a = results["before"][name] * 1e3, results["after"][name] * 1e3
        print(f"{name:<16}{b:>10.2f}{a:>10.2f}{b / a if a else float('nan'):>8.2f}")
    diff = max(max(abs(p[0] - q[0]) / abs(q[0]), abs(p[1] - q[1]) / abs(q[1]))
               for p, q in zip(results["after"]["losses"], results["before"]["losses"]))
    print(f"max relative difference of train and test losses, after vs before, over {args.steps + 2} steps: {diff:.1e}")


if __name__ == "__main__":
    main()

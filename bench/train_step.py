"""Training-step speed of the `nanda` preset against a plain PyTorch implementation.

The reference is written the way the published code is (every position through the MLP and the
unembedding, test loss every step); it starts from the same weights and sees the same data and
optimizer. Prints the time per step, the speedup, the loss difference, and the fraction of this
machine's float32 matmul throughput the grokscope step reaches.

    python bench/train_step.py [--steps 60] [--preset nanda]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from grokscope import load_preset
from grokscope.models import build_model
from grokscope.tasks import build_task


class PlainTransformer(nn.Module):
    """Nanda et al.'s model, written plainly: weights in their layout, all positions computed."""

    def __init__(self, ours):
        super().__init__()
        g = lambda t: nn.Parameter(t.detach().clone())
        a, m = ours.blocks[0].attn, ours.blocks[0].mlp
        self.W_E = g(ours.embed.W_E.T)                      # d_model x d_vocab
        self.W_pos = g(ours.pos_embed.W_pos)                # n_ctx x d_model
        self.W_Q = g(a.W_Q.transpose(1, 2))                 # heads x d_head x d_model
        self.W_K = g(a.W_K.transpose(1, 2))
        self.W_V = g(a.W_V.transpose(1, 2))
        self.W_O = g(a.W_O.flatten(0, 1).T)                 # d_model x heads*d_head
        self.W_in, self.b_in = g(m.W_in.T), g(m.b_in)       # d_mlp x d_model
        self.W_out, self.b_out = g(m.W_out.T), g(m.b_out)   # d_model x d_mlp
        self.W_U = g(ours.unembed.W_U)                      # d_model x classes
        n = self.W_pos.shape[0]
        self.register_buffer("mask", torch.tril(torch.ones(n, n)), persistent=False)
        self.d_head = self.W_Q.shape[1]

    def forward(self, x):
        resid = self.W_E[:, x].permute(1, 2, 0) + self.W_pos[: x.shape[1]]
        k = torch.einsum("ihd,bpd->biph", self.W_K, resid)
        q = torch.einsum("ihd,bpd->biph", self.W_Q, resid)
        v = torch.einsum("ihd,bpd->biph", self.W_V, resid)
        scores = torch.einsum("biph,biqh->biqp", k, q)
        scores = torch.tril(scores) - 1e10 * (1 - self.mask[: x.shape[1], : x.shape[1]])
        attn = F.softmax(scores / math.sqrt(self.d_head), dim=-1)
        z = torch.einsum("biph,biqp->biqh", v, attn)
        z = z.permute(0, 2, 1, 3).reshape(z.shape[0], z.shape[2], -1)
        resid = resid + torch.einsum("df,bqf->bqd", self.W_O, z)
        post = F.relu(torch.einsum("md,bpd->bpm", self.W_in, resid) + self.b_in)
        resid = resid + torch.einsum("dm,bpm->bpd", self.W_out, post) + self.b_out
        return (resid @ self.W_U)[:, -1]


def loss_fn(logits, labels):
    return F.cross_entropy(logits.to(torch.float64), labels)


def run(model, cfg, task, steps):
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                            betas=(cfg.optim.beta1, cfg.optim.beta2))
    x, y, tx, ty = task.train_inputs, task.train_labels, task.test_inputs, task.test_labels
    losses = []

    def step():
        loss = loss_fn(model(x), y)
        with torch.no_grad():
            test = loss_fn(model(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append((loss.item(), test.item()))

    step()  # warm-up
    # best of three chunks: on a shared machine a chunk can be slowed by others' work
    chunks = []
    for chunk in range(3):
        n = steps // 3 + (chunk < steps % 3)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        chunks.append((time.perf_counter() - t0) / max(n, 1))
    return min(chunks), losses


def step_flops(model, task):
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(task.train_inputs), task.train_labels).backward()
        with torch.no_grad():
            model(task.test_inputs)
    model.zero_grad()
    return counter.get_total_flops()


def matmul_gflops(n=2048, reps=10, trials=3):
    """The machine's float32 matmul throughput: best of `trials` timings of `reps` products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="nanda")
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    cfg = load_preset(args.preset)
    task = build_task(cfg)
    torch.manual_seed(0)
    ours = build_model(cfg, task)
    plain = PlainTransformer(ours)
    with torch.no_grad():
        torch.testing.assert_close(plain(task.all_inputs), ours(task.all_inputs), rtol=1e-4, atol=1e-4)

    gflops_before = matmul_gflops()
    t_plain, l_plain = run(plain, cfg, task, args.steps)
    t_ours, l_ours = run(ours, cfg, task, args.steps)
    diff = max(max(abs(a[0] - b[0]) / abs(b[0]), abs(a[1] - b[1]) / abs(b[1]))
               for a, b in zip(l_ours, l_plain))
    gflops = max(gflops_before, matmul_gflops())  # measured before and after the steps
    flops = step_flops(ours, task)
    print(f"preset {args.preset}: {task.train_inputs.shape[0]} train / {task.test_inputs.shape[0]} test, "
          f"{args.steps} steps (best of 3 chunks), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}")
    print(f"plain reference : {t_plain * 1e3:8.1f} ms/step")
    print(f"grokscope       : {t_ours * 1e3:8.1f} ms/step")
    print(f"speedup         : {t_plain / t_ours:8.2f}x   (goal >= 5x)")
    print(f"max rel. loss difference over {args.steps + 1} steps (train and test): {diff:.2e}")
    print(f"float32 matmul  : {gflops:8.1f} GFLOP/s (2048^2 matmul)")
    print(f"grokscope step  : {flops / 1e9:8.3f} GFLOP -> {flops / t_ours / 1e9:.1f} GFLOP/s "
          f"= {flops / t_ours / 1e9 / gflops:.1%} of matmul throughput")


if __name__ == "__main__":
    main()

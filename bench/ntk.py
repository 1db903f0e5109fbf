"""NTK speed on the `mlp` preset (p = 97, embeddings 128, one hidden layer of 512, 97 classes).

1. `empirical_ntk` (layer-wise form) against the per-sample autograd reference (one backward per
   example and output, stacked into J, then J J^T), same model and points, n = 500, for the
   correct-class logit and for the trace over logits (the reference for the trace is timed on a
   subset of examples and scaled: it needs n x 97 backward passes). Also the generic Jacobian
   path (torch.func) on the same model.
2. Top-k eigenvalues at n = 4,000 without forming K (Lanczos on K v), correct-class logit; and
   the cost of one K v product for the trace-over-logits kernel at the same n.

    python bench/ntk.py [--n 500] [--n-large 4000] [--k 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from grokscope import load_preset
from grokscope.measures.ntk import empirical_ntk, ntk_matvec, ntk_reference, ntk_top_eigenvalues
from grokscope.models import build_model
from grokscope.tasks import build_task


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--n-large", type=int, default=4000)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    cfg = load_preset("mlp")
    task = build_task(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, task)
    x, y = task.all_inputs[: args.n], task.all_labels[: args.n]
    print(f"mlp preset: {sum(p.numel() for p in model.parameters()):,} parameters, n = {args.n}, float64, "
          f"{torch.get_num_threads()} threads")

    ref, t_ref = timed(ntk_reference, model, x, "correct", labels=y)
    fast, t_fast = timed(empirical_ntk, model, x, "correct", labels=y)
    jac, t_jac = timed(empirical_ntk, model, x, "correct", labels=y, method="jacobian")
    err = float((fast - ref).abs().max() / ref.abs().max())
    print(f"correct-class logit: reference {t_ref:.2f} s, layer-wise {t_fast:.3f} s "
          f"({t_ref / t_fast:.0f}x; goal >= 10x), torch.func Jacobian {t_jac:.2f} s ({t_ref / t_jac:.1f}x); "
          f"max rel. difference {err:.1e}")

    m = 20
    sub, t_sub = timed(ntk_reference, model, x[:m], "trace")
    t_ref_trace = t_sub * args.n / m  # backward passes scale with n; J J^T is cheap next to them
    fast_t, t_fast_t = timed(empirical_ntk, model, x, "trace")
    err = float((empirical_ntk(model, x[:m], "trace") - sub).abs().max() / sub.abs().max())
    print(f"trace over 97 logits: reference ~{t_ref_trace:.0f} s (timed on {m} examples, scaled), "
          f"layer-wise {t_fast_t:.2f} s ({t_ref_trace / t_fast_t:.0f}x); max rel. difference {err:.1e}")

    xl, yl = task.all_inputs[: args.n_large], task.all_labels[: args.n_large]
    top, t_top = timed(ntk_top_eigenvalues, model, xl, args.k, "correct", labels=yl)
    print(f"top-{args.k} eigenvalues at n = {args.n_large}, correct-class logit, matrix-free Lanczos: "
          f"{t_top:.1f} s (goal < 30 s); largest {top[0]:.4g}")
    mv = ntk_matvec(model, xl, "correct", labels=yl)
    v = torch.randn(args.n_large, dtype=torch.float64)
    _, t_mv = timed(mv, v)
    mv_trace = ntk_matvec(model, xl, "trace")
    _, t_mv_trace = timed(mv_trace, v)
    print(f"one K v product at n = {args.n_large}: correct-class {t_mv * 1e3:.0f} ms, trace over logits "
          f"{t_mv_trace:.1f} s (97 VJP+JVP pairs); Lanczos needs ~{2 * args.k + 20}+ products")
    dense_trace, t_dense_trace = timed(empirical_ntk, model, xl, "trace")
    print(f"dense trace kernel at n = {args.n_large} by the layer-wise form: {t_dense_trace:.1f} s "
          f"({dense_trace.numel() * 8 / 2 ** 20:.0f} MB), then eigvalsh")

    # Kumar et al.'s committee machine: closed form against the generic paths
    kcfg = load_preset("kumar")
    ktask = build_task(kcfg)
    committee = build_model(kcfg, ktask)
    xk = ktask.train_inputs[: args.n]
    ref, t_ref = timed(ntk_reference, committee, xk, "scalar")
    closed, t_closed = timed(empirical_ntk, committee, xk, "scalar")
    jac, t_jac = timed(empirical_ntk, committee, xk, "scalar", method="jacobian")
    err = float((closed - ref).abs().max() / ref.abs().max())
    print(f"committee machine (D=100, N=500), n = {args.n}: reference {t_ref:.2f} s, closed form "
          f"{t_closed * 1e3:.1f} ms ({t_ref / t_closed:.0f}x), torch.func Jacobian {t_jac:.2f} s; "
          f"max rel. difference {err:.1e}")


if __name__ == "__main__":
    main()

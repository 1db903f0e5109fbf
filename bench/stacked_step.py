"""One stacked training step of the toy phase diagram's 88-model group (half of Liu et al.'s
176 runs, as each of `grokscope sweep`'s two processes trains them), on one core, split into
gradient and optimizer update, against the earlier implementation side by side:

    gradient: vmap(grad(loss)) (earlier) | one backward through vmap(loss) (the version before
              the traced graph) | the same backward through vmap(loss) traced once and replayed (now)
    update:   AdamW over the stacked tensors (earlier; still the fallback) | torch's fused kernel per model (now)

    python bench/stacked_step.py [--models 88] [--repeat 30]

Prints milliseconds per step (best of 3 rounds; whole steps with the traced graph against vmap:
the median of 40 alternating rounds), the ratios, and the largest difference between
the two paths' gradients and updated weights (float32 rounding); the traced graph's gradients
are checked bit for bit against the backward through vmap.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.func import grad_and_value, vmap

from grokscope import load_preset, with_overrides
from grokscope.training.stacked import StackedStepper


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat * 1e3)
    return best


def interleaved_ms(a, b, repeat: int, rounds: int = 40) -> tuple[float, float]:
    """Median ms per call of a and of b over `rounds` rounds that alternate which goes first (a
    difference of a few percent is below this machine's drift from one minute to the next;
    alternating cancels the drift and any order effect)."""
    a(), b()
    times: tuple[list, list] = ([], [])
    for r in range(rounds):
        pairs = list(zip((a, b), times))
        for fn, acc in (pairs if r % 2 else pairs[::-1]):
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            acc.append((time.perf_counter() - t0) / repeat * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=88)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = with_overrides(load_preset("liu-toy"), ["train.steps=100000", "train.log_every=10"])
    cells = [(10 ** (-5 + 3 * i / 15), wd) for i in range(16) for wd in range(11)][:args.models]
    configs = [with_overrides(base, [f"optim.lr={lr}", f"optim.weight_decay={wd}", f"name=m{k}"])
               for k, (lr, wd) in enumerate(cells)]
    with tempfile.TemporaryDirectory() as tmp:
        st = StackedStepper(configs, [Path(tmp) / c.name for c in configs], "cpu")
    st.forward()
    st.apply_update(st.grads, 1.0)  # a nonzero optimizer state

    # the earlier gradient: vmap over the per-model gradient
    old_grad_fn = vmap(grad_and_value(st.loss_one, has_aux=True))

    def old_forward():
        return old_grad_fn(st.params, st.buffers, st.train_x, st.train_y, st.targets)[0]

    def vmap_forward():  # one backward through vmap(loss), without the traced graph
        params = {n: p.detach().requires_grad_() for n, p in st.params.items()}
        with torch.enable_grad():
            loss, _ = st.loss_fn(params, st.buffers, st.train_x, st.train_y, st.targets)
            return torch.autograd.grad(loss.sum(), list(params.values()), materialize_grads=True)

    st.forward()
    assert None not in st.graphs.values(), "the loss was not traced"
    bitwise = all(torch.equal(a, b) for a, b in zip(vmap_forward(), st.grads.values()))
    old = old_forward()
    grad_diff = max(((st.grads[n] - old[n]).abs().max() / old[n].abs().max().clamp_min(1e-30)).item() for n in old)

    saved = copy.deepcopy((st.params, st.exp_avg, st.exp_avg_sq, st.opt_steps))
    st._fused_update(st.grads, 1.0)
    fused = {n: p.clone() for n, p in st.params.items()}
    for d, src in zip((st.params, st.exp_avg, st.exp_avg_sq), saved[:3]):
        for n in d:
            d[n].copy_(src[n])
    st._stacked_update(st.grads, 1.0)
    update_diff = max(((fused[n] - st.params[n]).abs().max() / st.params[n].abs().max()).item() for n in fused)

    t_old_grad = best_ms(old_forward, args.repeat)
    graphs = dict(st.graphs)

    def step_with(traced: bool):  # a whole training step, the loss traced or through vmap
        def step():
            st.graphs.update(graphs if traced else dict.fromkeys(graphs))
            st.forward()
            st._fused_update(st.grads, 1.0)
        return step

    t_vmap_step, t_traced_step = interleaved_ms(step_with(False), step_with(True), args.repeat)
    t_vmap_grad, t_grad = best_ms(vmap_forward, args.repeat), best_ms(st.forward, args.repeat)
    t_old_update = best_ms(lambda: st._stacked_update(st.grads, 1.0), args.repeat)
    t_update = best_ms(lambda: st._fused_update(st.grads, 1.0), args.repeat)
    print(f"liu-toy, {args.models} models stacked, one core (torch {torch.__version__})")
    print(f"{'':10s} {'earlier ms':>11s} {'now ms':>8s} {'ratio':>7s}")
    print(f"{'gradient':10s} {t_old_grad:11.2f} {t_grad:8.2f} {t_old_grad / t_grad:6.2f}x")
    print(f"  through vmap {t_vmap_grad:.2f} ms, traced graph {t_grad:.2f} ms (best of 3; gradients bit for bit "
          f"equal: {'yes' if bitwise else 'NO'})")
    print(f"{'update':10s} {t_old_update:11.2f} {t_update:8.2f} {t_old_update / t_update:6.2f}x")
    old_total, total = t_old_grad + t_old_update, t_grad + t_update
    print(f"{'step':10s} {old_total:11.2f} {total:8.2f} {old_total / total:6.2f}x")
    print(f"whole step, vmap against the traced graph, median of 40 alternating rounds: {t_vmap_step:.2f} ms "
          f"-> {t_traced_step:.2f} ms ({t_vmap_step / t_traced_step:.3f}x)")
    print(f"largest relative difference: gradients {grad_diff:.1e}, updated weights {update_diff:.1e}")


if __name__ == "__main__":
    main()

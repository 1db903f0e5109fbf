"""Train many small models at once: parameters stacked along a leading model axis, one
`torch.func.vmap` of `functional_call(model)` and one backward per step, and AdamW/Adam with
per-model learning rates and weight decays (torch's fused kernel, one call per distinct learning
rate and weight decay).

`train_many(configs, outs)` runs the one loop skeleton (`training.loop.run_loop`) with a
`StackedStepper` and writes exactly what `train(config, out)` writes for each config (the
run-directory contract, the same resume-state format, so a run started here can be finished by
the plain trainer and the other way round). Results equal separate training to float rounding
(the tests compare both). What may differ between the runs of one group: `train.seed`,
`task.split_seed`, `optim.lr`, `optim.weight_decay`, `optim.embed_lr`, `optim.embed_weight_decay`
(and the name); everything else must be equal, with full-batch training, no Grokfast and no fixed
norm (`compatible_key` says which runs can share a group).

Small models are dominated by per-step Python and kernel-launch overhead, which one stacked step
pays once for the whole group: see docs/benchmarks.md for the measured speedup.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from grokscope.config import RunConfig
from grokscope.measures.losses import accuracy, embed_penalty, loss_value
from grokscope.models import build_model, model_kinds
from grokscope.store import Run, run_status, stored_config
from grokscope.tasks import build_task, task_targets
from grokscope.training.loop import process_settings, run_loop
from grokscope.training.optim import base_lr
from grokscope.training.state import DTYPES, RunState, default_out, setup_run

VARYING = {("train", "seed"), ("task", "split_seed"), ("optim", "lr"), ("optim", "weight_decay"),
           ("optim", "embed_lr"), ("optim", "embed_weight_decay")}
def compatible_key(config: RunConfig) -> str | None:
    """Runs with equal keys can be trained as one stacked group; None: this run cannot be (its
    model is not registered `stackable`, models/__init__.py, or its optimizer or loop is not
    the one stacked training writes)."""
    t, o = config.train, config.optim
    kind = model_kinds().get(config.model.name)
    if (kind is None or not kind.stackable or o.name not in ("adamw", "adam") or o.grokfast != "none"
            or t.fixed_norm is not None or t.batch_size != 0):
        return None
    d = config.to_dict()
    d.pop("name"), d.pop("description")
    for section, key in VARYING:
        d[section].pop(key)
    return json.dumps(d, sort_keys=True)


def flops_per_step(config: RunConfig, n_params: int, n_train: int) -> float:
    """A rough count (6 x parameters x examples x positions) used to decide whether stacking pays."""
    positions = 3 if config.model.name == "transformer" else 1
    return 6.0 * n_params * n_train * positions


# Stacking pays where a model step is overhead-bound (few FLOP) and costs where it is
# arithmetic-bound; this is where `bench/vectorized.py` puts the crossing (docs/benchmarks.md).
AUTO_MAX_FLOPS = 1e8


# Past a few tens of MB a group's stacked parameters, gradients and Adam moments no longer stay
# in the cache from one pass of a step to the next, and every pass goes out to memory
# (`bench/stacked_groups.py` on the toy phase diagram; its figures are in docs/benchmarks.md).
GROUP_BYTES = 48 * 2**20


# On a GPU no cache limit applies: a group is bounded by the device's memory. A share of what is
# free leaves room for the activations, the test evaluation and the other groups' workers.
GPU_MEMORY_SHARE = 0.25


def group_bytes(device: str = "cpu") -> int:
    """The working set one stacked group may take: GROUP_BYTES on the CPU (the cache), a share
    of the free memory on a CUDA device (on a GPU, larger groups mean fewer kernel launches)."""
    if not str(device).startswith("cuda"):
        return GROUP_BYTES
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return max(GROUP_BYTES, int(GPU_MEMORY_SHARE * free))


def max_group_size(config: RunConfig, device: str = "cpu") -> int:
    """How many runs of this config one stacked group holds before its working set (parameters,
    gradients, exp_avg, exp_avg_sq) passes `group_bytes(device)`; at least 2."""
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task)
    per_model = 4 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return max(2, group_bytes(device) // per_model)


class StackedStepper:
    """The stacked state of M runs, and the varying part of the loop for them."""

    def __init__(self, configs: list[RunConfig], outs: list[Path], device: str):
        self.configs, self.outs, self.device = configs, outs, device
        self.config = configs[0]
        self.runs: list[RunState] = []
        for config, out in zip(configs, outs):
            resume = run_status(out) is not None
            if resume:
                config = stored_config(out)
            self.runs.append(setup_run(config, out, resume=resume, device=device,
                                       info_extra={"trainer": f"vectorized ({len(configs)} models)",
                                                   "stacked_with": [o.name for o in outs]}))
        for st in self.runs:
            st.share = len(self.runs)   # each run's training time is its share of the group's
        self.tasks = [st.task for st in self.runs]
        self.step = min(st.step for st in self.runs)
        for st in self.runs:
            if st.step != self.step:  # killed while flushing the group run by run: step back to the others
                st.load_resume(self.step)
                st.writer.load_rows(self.step)
        self.resume_hint = "run the same command again to continue"
        self._stack()
        if self.step == 0:
            # every run holds a resume state before any holds a later one, so a group killed
            # while flushing its first real state can still bring all its runs to one step
            self.flush()

    def _stack(self) -> None:
        model0 = self.runs[0].model
        self.names = [n for n, p in model0.named_parameters() if p.requires_grad]
        self.buffer_names = [n for n, _ in model0.named_buffers()]
        models = [st.model for st in self.runs]
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).clone()
                       for n in self.names}
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n in self.buffer_names}
        # optimizer state: per parameter, per model; hyperparameters as (M,) tensors per parameter
        M = len(models)
        self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.lr = {n: torch.zeros(M, dtype=torch.float64) for n in self.names}
        self.wd = {n: torch.zeros(M, dtype=torch.float64) for n in self.names}
        self.opt_steps = 0
        for k, (st, config) in enumerate(zip(self.runs, self.configs)):
            name_of = {id(p): n for n, p in st.model.named_parameters()}
            for group in st.optimizer.param_groups:
                for p in group["params"]:
                    n = name_of[id(p)]
                    self.lr[n][k] = base_lr(config) * group["lr_scale"]
                    self.wd[n][k] = group["weight_decay"]
                    state = st.optimizer.state.get(p)
                    if state:
                        self.exp_avg[n][k] = state["exp_avg"]
                        self.exp_avg_sq[n][k] = state["exp_avg_sq"]
                        self.opt_steps = int(state["step"])
        o = self.configs[0].optim
        self.kind, self.beta1, self.beta2 = o.name, o.beta1, o.beta2
        self.model = model0
        dtype = DTYPES[self.configs[0].train.loss_dtype]
        loss_kind = self.configs[0].train.loss
        self.embed_l1, self.dtype = self.configs[0].train.embed_l1, dtype

        def loss_fn(params, buffers, x, y, targets):
            out = functional_call(self.model, (params, buffers), (x,))
            return loss_value(out, y, loss_kind, dtype, targets), out

        self.loss_one = loss_fn
        self.loss_fn = vmap(loss_fn)  # (M,) losses and the (M, batch, ...) outputs
        self.graphs: dict[tuple, torch.fx.GraphModule | None] = {}  # traced loss_fn per input shape
        # accuracy is computed only for the steps that log it (argmin over targets, argmax)
        self.accuracy = vmap(lambda out, y, targets: accuracy(out, y, loss_kind, dtype, targets))
        stack = lambda xs: torch.stack([x.to(self.device) for x in xs])
        self.train_x = stack([t.train_inputs for t in self.tasks])
        self.train_y = stack([t.train_labels for t in self.tasks])
        self.test_x = stack([t.test_inputs for t in self.tasks])
        self.test_y = stack([t.test_labels for t in self.tasks])
        targets = [task_targets(t) for t in self.tasks]
        self.targets = stack(targets) if targets[0] is not None else torch.zeros(M, 1)

    @torch.no_grad()
    def apply_update(self, grads: dict[str, Tensor], factor: float) -> None:
        """One AdamW (decoupled decay) or Adam (L2 added to the gradient) step for every model."""
        self.opt_steps += 1
        if self._fused_calls():
            self._fused_update(grads, factor)
        else:
            self._stacked_update(grads, factor)

    def _fused_calls(self) -> list[tuple] | None:
        """torch's fused Adam(W) kernel, one call per distinct (lr, weight decay) over the
        parameters of every model that has it (a phase diagram's cells differ in the decoder's lr
        and decay, so that is one call per model, plus one for all the embeddings): one pass over
        each model's parameters and state while they sit in cache, against the stacked update's
        eight passes over every model's. Per call: lr, weight decay, the (model, parameter name)
        pairs, and views of their parameters, exp_avg and exp_avg_sq. None where torch has no
        fused kernel for this device and dtype."""
        if not hasattr(self, "_calls"):
            self._calls = None
            kernel = getattr(torch, "_fused_adamw_" if self.kind == "adamw" else "_fused_adam_", None)
            dtype = next(iter(self.params.values())).dtype
            supported = self.device == "cpu" or torch.device(self.device).type == "cuda"
            if kernel is not None and supported and dtype in (torch.float32, torch.float64):
                self._kernel = kernel
                self._step_t = torch.zeros((), dtype=torch.float32, device=self.device)
                # per-model views of the stacked tensors, made once (they stay valid: every
                # update is in place)
                views = {n: (t.unbind(), self.exp_avg[n].unbind(), self.exp_avg_sq[n].unbind())
                         for n, t in self.params.items()}
                groups: dict[tuple[float, float], list[tuple[int, str]]] = {}
                for k in range(len(self.runs)):
                    for n in self.names:
                        groups.setdefault((float(self.lr[n][k]), float(self.wd[n][k])), []).append((k, n))
                self._calls = [(lr, wd, members, *([views[n][i][k] for k, n in members] for i in range(3)))
                               for (lr, wd), members in groups.items()]
        return self._calls

    def _fused_update(self, grads: dict[str, Tensor], factor: float) -> None:
        self._step_t.fill_(self.opt_steps)
        # the kernel walks parameters and gradients in one memory order: vmap leaves some
        # gradients (attention's W_Q, W_K, W_V) transposed
        per_model = {n: g.contiguous().unbind() for n, g in grads.items()}
        for lr, wd, members, params, exp_avgs, exp_avg_sqs in self._calls:
            self._kernel(params, [per_model[n][k] for k, n in members], exp_avgs, exp_avg_sqs, [],
                         [self._step_t] * len(members), lr=lr * factor, beta1=self.beta1, beta2=self.beta2,
                         weight_decay=wd, eps=1e-8, amsgrad=False, maximize=False)

    def _stacked_update(self, grads: dict[str, Tensor], factor: float) -> None:
        """The same step written over the stacked tensors, as torch.optim's single-tensor
        implementation does it (where no fused kernel applies)."""
        b1, b2, eps = self.beta1, self.beta2, 1e-8
        bc1 = 1 - b1 ** self.opt_steps
        bc2_sqrt = math.sqrt(1 - b2 ** self.opt_steps)
        for n, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            lr = self.lr[n] * factor  # float64, as torch.optim's Python-float arithmetic
            g = grads[n]
            if self.kind == "adamw":
                p.mul_((1 - lr * self.wd[n]).to(p.dtype).view(shape))
            else:
                g = g + self.wd[n].to(p.dtype).view(shape) * p
            m, v = self.exp_avg[n], self.exp_avg_sq[n]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            # lr/bc1 * m / (sqrt(v)/bc2_sqrt + eps) = m / ((sqrt(v) + eps bc2_sqrt) / (lr bc2_sqrt/bc1)):
            # one pass fewer than torch's order, the same update to rounding
            denom = v.sqrt().add_(eps * bc2_sqrt).div_((lr * bc2_sqrt / bc1).to(p.dtype).view(shape))
            p.addcdiv_(m, denom, value=-1.0)

    def weight_norms(self) -> list[float]:
        total = sum(p.pow(2).flatten(1).sum(1) for p in self.params.values())
        return total.sqrt().tolist()

    def state_dict(self, k: int, copy: bool = True) -> dict[str, Tensor]:
        """Model k's state dict, in the model's own key order; copy=False: views into the stack."""
        if not hasattr(self, "_keys"):
            self._keys = list(self.model.state_dict())
        out = {n: self.params[n][k] for n in self.names}
        out.update({n: self.buffers[n][k] for n in self.buffer_names})
        return {n: out[n].clone() if copy else out[n] for n in self._keys}

    def active(self) -> list[RunState]:
        return [st for st in self.runs if st.diverged_at is None]

    def settle_due(self) -> bool:
        return False  # rows are read as they are logged

    def settle(self) -> list[tuple[RunState, int]]:
        return []

    def non_finite(self) -> list[RunState]:
        bad = (~torch.isfinite(self.loss)).tolist()
        return [st for st, b in zip(self.runs, bad) if b and st.diverged_at is None]

    def forward(self) -> None:
        # the models' losses are independent, so the gradient of their sum holds each model's own
        # gradient: one ordinary backward through the vmapped forward, faster on CPU than
        # vmap(grad(loss)), whose batched backward leaves the weight-gradient products in strided
        # layouts (`bench/stacked_step.py`, docs/benchmarks.md)
        params = {n: p.detach().requires_grad_() for n, p in self.params.items()}
        with torch.enable_grad():
            loss, out = self.batched_loss(params, self.train_x, self.train_y)
            if self.embed_l1:   # the training loss only, as the plain trainer adds it
                loss = loss + vmap(embed_penalty, in_dims=(0, None, None))(params["embed.W_E"], self.embed_l1,
                                                                           self.dtype)
            grads = torch.autograd.grad(loss.sum(), list(params.values()), materialize_grads=True)
        self.grads, self.loss, self.out = dict(zip(params, grads)), loss.detach(), out.detach()

    def batched_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The (M,) losses and (M, batch, ...) outputs of every model: `loss_fn` (vmap over
        functional_call), or its traced graph where `trace` made one for these inputs."""
        key = (tuple(x.shape), tuple(y.shape))
        if key not in self.graphs:
            self.graphs[key] = self.trace(x, y)
        graph = self.graphs[key]
        if graph is None:
            return self.loss_fn(params, self.buffers, x, y, self.targets)
        return graph(*params.values(), *self.buffers.values(), x, y, self.targets)

    def trace(self, x: Tensor, y: Tensor) -> torch.fx.GraphModule | None:
        """`loss_fn` on these inputs as a graph of the batched operations vmap dispatches
        (`make_fx`), or None to keep vmap. Replaying the graph skips vmap's and functional_call's
        per-operation work (`bench/stacked_step.py`; the speedup is in docs/benchmarks.md) and
        runs the same kernels on the same tensors; autograd records the same operations, so
        losses, outputs and gradients are those of vmap bit for bit. That is checked here, once:
        a graph that differs in any bit (a model that draws random numbers or branches on values)
        or fails to trace is not used."""
        from torch.fx.experimental.proxy_tensor import make_fx

        names, buffer_names = list(self.params), list(self.buffers)
        P, B = len(names), len(buffer_names)

        def flat(*args):
            return self.loss_fn(dict(zip(names, args[:P])), dict(zip(buffer_names, args[P:P + B])), *args[P + B:])

        def run(fn):
            params = [p.detach().requires_grad_() for p in self.params.values()]
            with torch.enable_grad():
                loss, out = fn(*params, *self.buffers.values(), x, y, self.targets)
                grads = torch.autograd.grad(loss.sum(), params, materialize_grads=True, allow_unused=True)
            return [loss, out, *grads]

        try:
            graph = make_fx(flat)(*self.params.values(), *self.buffers.values(), x, y, self.targets)
            same = all(bitwise_equal(a, b) for a, b in zip(run(flat), run(graph), strict=True))
        except Exception:  # noqa: BLE001 - anything make_fx cannot trace keeps vmap
            return None
        return graph if same else None

    def _factor(self, lr: float) -> float:
        base = base_lr(self.config)
        return lr / base if base > 0 else 0.0

    def log(self, lr: float) -> str:
        steps = self.config.train.steps
        factor = self._factor(lr)
        with torch.no_grad():
            train_acc = self.accuracy(self.out, self.train_y, self.targets)
            test_loss, test_out = self.batched_loss(self.params, self.test_x, self.test_y)
            test_acc = self.accuracy(test_out, self.test_y, self.targets)
        cols = zip(self.loss.tolist(), train_acc.tolist(), test_loss.tolist(), test_acc.tolist(),
                   self.weight_norms(), (base_lr(c) * factor if self.step < steps else 0.0
                                         for c in self.configs))
        for st, col in zip(self.runs, cols):
            if st.diverged_at is None:
                st.writer.append((self.step, *col))
        return f"{len(self.runs)} runs"

    def checkpoint(self) -> None:
        for k, st in enumerate(self.runs):
            if st.diverged_at is None:
                st.writer.save_checkpoint(self.step, self.state_dict(k, copy=False), sync=False)

    def update(self, lr: float) -> None:
        self.apply_update(self.grads, self._factor(lr))

    def flush(self) -> None:
        """Write every run's metrics and resume state in the plain trainer's format."""
        for k, st in enumerate(self.runs):
            if st.diverged_at is not None:
                continue  # its resume state keeps the last finite weights
            with torch.no_grad():
                st.model.load_state_dict(self.state_dict(k))
            opt = st.optimizer
            name_of = {id(p): n for n, p in st.model.named_parameters()}
            state, groups, index = {}, [], 0
            for group in opt.param_groups:
                ids = []
                for p in group["params"]:
                    n = name_of[id(p)]
                    if self.opt_steps > 0:
                        state[index] = {"step": torch.tensor(float(self.opt_steps)),
                                        "exp_avg": self.exp_avg[n][k].clone(),
                                        "exp_avg_sq": self.exp_avg_sq[n][k].clone()}
                    ids.append(index)
                    index += 1
                groups.append({**{a: b for a, b in group.items() if a != "params"}, "params": ids})
            opt.load_state_dict({"state": state, "param_groups": groups})
            st.step = self.step
            st.flush()


def bitwise_equal(a: Tensor, b: Tensor) -> bool:
    """The same dtype, shape and bits (NaN equal to NaN, -0.0 not equal to 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.contiguous().view(ints), b.contiguous().view(ints))


def train_many(configs: list[RunConfig], outs: list[str | Path] | None = None, *,
               progress: bool = False, device: str = "cpu", status_file: Path | None = None) -> list[Run]:
    """Train runs that share everything but seeds and optimizer hyperparameters as one stacked
    group; resumes runs that hold a resume state. Returns the Runs. `status_file`, when given,
    receives {"step", "steps"} every few seconds (how a sweep shows progress inside a group)."""
    outs = [Path(o) if o is not None else default_out(c)
            for c, o in zip(configs, outs or [None] * len(configs))]
    pending = [(c, o) for c, o in zip(configs, outs) if run_status(o) != "complete"]
    if pending:
        keys = {compatible_key(stored_config(o) or c) for c, o in pending}
        if len(keys) != 1 or None in keys:
            raise ValueError("train_many needs runs that differ only in seeds, learning rates and "
                             "weight decays, trained full batch without Grokfast or a fixed norm")
        process_settings(pending[0][0], device)   # on the CPU: no page faults re-mapping the step's activations
        stepper = StackedStepper([c for c, _ in pending], [o for _, o in pending], device)
        run_loop(stepper, progress=progress, label=f"step ({len(pending)} runs)", adaptive_flush=True,
                 status_file=status_file)
    return [Run(o) for o in outs]


def choose_vectorized(configs: list[RunConfig], task_sizes: tuple[int, int] | None = None) -> bool:
    """Stack these runs when they are compatible and each step is small enough that overhead,
    not arithmetic, dominates (AUTO_MAX_FLOPS)."""
    if len(configs) < 2:
        return False
    keys = {compatible_key(c) for c in configs}
    if len(keys) != 1 or None in keys:
        return False
    config = configs[0]
    task = build_task(config)
    torch.manual_seed(0)
    n_params = sum(p.numel() for p in build_model(config, task).parameters())
    return flops_per_step(config, n_params, len(task.train_indices)) <= AUTO_MAX_FLOPS


__all__ = ["AUTO_MAX_FLOPS", "GPU_MEMORY_SHARE", "GROUP_BYTES", "StackedStepper", "choose_vectorized",
           "compatible_key", "group_bytes", "max_group_size", "train_many"]

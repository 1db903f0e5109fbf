"""The plain trainer's step as captured CUDA graphs.

A small model's step on a GPU is mostly kernel launches: hundreds of small kernels, each launched
from Python. A CUDA graph records them once and replays them with one launch. The step is cut
into three parts so that the loop keeps its order (the row and the checkpoint of step s are
taken before update s + 1):

- `train`: the gradients zeroed, the training forward pass, loss and accuracy into static
  tensors, the backward pass (the weights are still those of step s);
- `evaluate` (logged steps only): the test forward pass and the global weight norm, stacked with
  the train loss and accuracy into one static row;
- `update`: the optimizer step, with the learning rate read from a device tensor that is set
  before each replay (the warm-up changes it).

Each part is a plain function over tensors whose addresses never change, with no host read, so
it can run eagerly (the CPU test on the stand-in device does) or be captured (`capture`, CUDA
only). The optimizer is torch's Adam/AdamW with `capturable=True`: its step count and learning
rate live on the device, and its state is created before capture (created inside a graph, it
would be reset at every replay).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from grokscope.measures.losses import embed_penalty, loss_and_accuracy
from grokscope.training.state import weight_norm_tensor

GRAPHED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


def metrics_row(loss: Tensor, acc: Tensor, test_loss: Tensor, test_acc: Tensor, params: list[Tensor]) -> Tensor:
    """A metrics row's measured values (train loss and accuracy, test loss and accuracy, global
    weight norm) as one float64 tensor on the device: float32 -> float64 is exact, so reading it
    gives the numbers `.item()` would."""
    values = (loss, acc, test_loss, test_acc, weight_norm_tensor(params))
    return torch.stack([v.detach().to(torch.float64) for v in values])


def why_not_graphed(stepper) -> str | None:
    """None when the step can be captured; else what prevents it (the step then runs eagerly)."""
    st = stepper.st
    if not isinstance(st.optimizer, GRAPHED_OPTIMIZERS):
        return f"optim.name={stepper.config.optim.name} (Adam and AdamW are captured)"
    if not stepper.full_batch:
        return "minibatches are drawn on the host each step"
    if st.grokfast is not None:
        return "the Grokfast filter"
    if st.fixed_norm is not None:
        return "train.fixed_norm"
    if any(g.get("amsgrad") for g in st.optimizer.param_groups):
        return "amsgrad"
    return None


class StepParts:
    """The three parts of a step over static tensors (see the module docstring)."""

    def __init__(self, stepper):
        st = stepper.st
        self.model, self.optimizer, self.params = st.model, st.optimizer, stepper.params
        self.loss_kind, self.dtype, self.targets = stepper.config.train.loss, stepper.dtype, stepper.targets
        self.embed_l1 = stepper.config.train.embed_l1
        self.train_x, self.train_y = stepper.train_x, stepper.train_y
        self.test_x, self.test_y = stepper.test_x, stepper.test_y
        device = self.params[0].device
        make_capturable(self.optimizer, device)
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.grads = [p.grad for p in self.params]
        self.loss = torch.zeros((), dtype=self.dtype, device=device)
        self.acc = torch.zeros((), dtype=self.dtype, device=device)
        self.row = torch.zeros(5, dtype=torch.float64, device=device)  # loss, acc, test loss, test acc, norm

    def train(self) -> None:
        torch._foreach_zero_(self.grads)
        self.model.train()
        loss, acc = loss_and_accuracy(self.model(self.train_x), self.train_y, self.loss_kind, self.dtype,
                                      self.targets)
        if self.embed_l1:
            loss = loss + embed_penalty(self.model.embed.W_E, self.embed_l1, self.dtype)
        loss.backward()
        self.loss.copy_(loss.detach())
        self.acc.copy_(acc)

    def evaluate(self) -> None:
        self.model.eval()
        with torch.no_grad():
            test_loss, test_acc = loss_and_accuracy(self.model(self.test_x), self.test_y, self.loss_kind,
                                                    self.dtype, self.targets)
            self.row.copy_(metrics_row(self.loss, self.acc, test_loss, test_acc, self.params))

    def step_optimizer(self) -> None:
        self.optimizer.step()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"].fill_(lr * group["lr_scale"])  # a kernel launch, not a host read

    def update(self, lr: float) -> None:
        self.set_lr(lr)
        self.step_optimizer()


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Adam(W) with its step count and learning rate on the device, and its state created now,
    as torch creates it on the first step (zero moments, step 0)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["foreach"] = True
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        for p in group["params"]:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif state["step"].device != device:
                state["step"] = state["step"].to(device=device, dtype=torch.float32)


class GraphedStep:
    """`StepParts` captured as three CUDA graphs; `train()`, `evaluate()` and `update(lr)`
    replay them."""

    def __init__(self, parts: StepParts):
        self.parts, self.loss, self.acc, self.row = parts, parts.loss, parts.acc, parts.row
        warm_up(parts)
        self.graphs = {name: capture(getattr(parts, name)) for name in ("train", "evaluate", "step_optimizer")}

    def train(self) -> None:
        self.graphs["train"].replay()

    def evaluate(self) -> None:
        self.graphs["evaluate"].replay()

    def update(self, lr: float) -> None:
        self.parts.set_lr(lr)
        self.graphs["step_optimizer"].replay()


def warm_up(parts: StepParts) -> None:
    """Run each kernel once on a side stream before capture (cuBLAS handles, autograd's
    accumulators): the forward, backward and evaluation on the real tensors (they change only
    static buffers), the optimizer on a throwaway copy (the real one must not step)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            parts.train()
            parts.evaluate()
        groups = []
        for group in parts.optimizer.param_groups:
            copies = []
            for p in group["params"]:
                c = p.detach().clone().requires_grad_(True)
                c.grad = p.grad.clone()
                copies.append(c)
            groups.append({**group, "params": copies, "lr": group["lr"].clone()})
        spare = type(parts.optimizer)(groups)
        make_capturable(spare, parts.params[0].device)
        for _ in range(3):
            spare.step()
    torch.cuda.current_stream().wait_stream(stream)


def capture(fn: Callable[[], None]) -> "torch.cuda.CUDAGraph":
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def step_parts_for(stepper) -> GraphedStep | None:
    """What PlainStepper uses: on CUDA the captured step, else (and where the step cannot be
    captured, or capture failed, with a warning) None: the eager step."""
    if torch.device(stepper.device).type != "cuda" or why_not_graphed(stepper) is not None:
        return None
    parts = StepParts(stepper)
    try:
        return GraphedStep(parts)
    except Exception as e:  # a capture that fails leaves the eager step, which is always right
        warnings.warn(f"the training step could not be captured in a CUDA graph ({type(e).__name__}: {e}); "
                      "training goes on without it", stacklevel=2)
        return None


__all__ = ["GraphedStep", "StepParts", "make_capturable", "metrics_row", "step_parts_for", "why_not_graphed"]

"""Optimizers, the warm-up schedule, Grokfast gradient filters, and their state as tensors.

Optimizer state is stored as safetensors (tensors) plus JSON (the rest), never pickled.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor, nn

from grokscope.config import RunConfig
from grokscope.errors import UsageError

OPTIMIZERS = ("adamw", "adam", "sgd")


def base_lr(config: RunConfig) -> float:
    lr = config.optim.lr
    if config.model.alpha_lr:
        lr /= config.model.alpha ** 2  # Kumar et al. 2024: keep the function-space step fixed
    return lr


def lr_at(config: RunConfig, step: int) -> float:
    """Learning rate of the update made at `step`: Nanda et al.'s LambdaLR min(step / warmup, 1)."""
    warmup = config.optim.warmup_steps
    return base_lr(config) * (min(step / warmup, 1.0) if warmup > 0 else 1.0)


def param_groups(config: RunConfig, model: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters in groups: the token embedding (`embed.*`) on its own when
    `optim.embed_lr` or `optim.embed_weight_decay` is set (Liu et al. 2022 train embedding and
    decoder with separate AdamW optimizers; per-parameter AdamW makes that the same as two groups),
    else one group. `lr_scale` is the group's learning rate over `optim.lr`."""
    o = config.optim
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    split = o.embed_lr is not None or o.embed_weight_decay is not None
    embed = [p for n, p in named if split and n.startswith("embed.")]
    rest = [p for n, p in named if not (split and n.startswith("embed."))]
    groups = [{"params": rest, "weight_decay": o.weight_decay, "lr_scale": 1.0}]
    if embed:
        groups.insert(0, {"params": embed,
                          "lr_scale": o.embed_lr / o.lr if o.embed_lr is not None else 1.0,
                          "weight_decay": (o.embed_weight_decay if o.embed_weight_decay is not None
                                           else o.weight_decay)})
    return [g for g in groups if g["params"]]


def make_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    lr = base_lr(config)
    groups = param_groups(config, model)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(o.beta1, o.beta2))
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(o.beta1, o.beta2))
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=o.momentum)
    raise UsageError(f"unknown optim.name {o.name!r}; choose one of {', '.join(OPTIMIZERS)}")


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], str]:
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    # a step captured on CUDA (training.graphed) keeps the learning rate in a device tensor and the
    # optimizer capturable: stored as the plain optimizer, so the run resumes on any device
    groups = [{**g, "lr": float(g["lr"]), "capturable": False} if isinstance(g.get("lr"), Tensor) else g
              for g in state["param_groups"]]
    return tensors, json.dumps({"param_groups": groups, "scalars": scalars})


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: str) -> None:
    info = json.loads(meta)
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in info["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


class Grokfast:
    """Gradient filters of Lee et al. 2024 ("Grokfast"): add lamb times a low-pass filtered
    gradient to the gradient. EMA: h <- alpha h + (1 - alpha) g. MA: the mean of the last
    `window` gradients, applied once the window is full (their default)."""

    def __init__(self, kind: str, params: list[nn.Parameter], alpha: float, lamb: float, window: int):
        if kind not in ("ema", "ma"):
            raise UsageError(f"unknown optim.grokfast {kind!r}; choose none, ema or ma")
        self.kind, self.params, self.alpha, self.lamb, self.window = kind, params, alpha, lamb, window
        self.count = 0
        if kind == "ema":
            self.buffers = [torch.zeros_like(p) for p in params]
        else:
            self.buffers = [torch.zeros((window, *p.shape), dtype=p.dtype, device=p.device) for p in params]

    @torch.no_grad()
    def apply(self) -> None:
        grads = [p.grad for p in self.params]
        if self.kind == "ema":
            if self.count == 0:
                for h, g in zip(self.buffers, grads):
                    h.copy_(g)  # their code starts the average at the first gradient
            else:
                torch._foreach_lerp_(self.buffers, grads, 1.0 - self.alpha)
            torch._foreach_add_(grads, self.buffers, alpha=self.lamb)
        else:
            slot = self.count % self.window
            for ring, g in zip(self.buffers, grads):
                ring[slot].copy_(g)
            if self.count + 1 >= self.window:
                for ring, g in zip(self.buffers, grads):
                    g.add_(ring.mean(0), alpha=self.lamb)
        self.count += 1

    def to_tensors(self) -> dict[str, Tensor]:
        out = {f"grokfast.{i}": b for i, b in enumerate(self.buffers)}
        out["grokfast.count"] = torch.tensor(self.count)
        return out

    def load_tensors(self, tensors: dict[str, Tensor]) -> None:
        for i, b in enumerate(self.buffers):
            b.copy_(tensors[f"grokfast.{i}"])
        self.count = int(tensors["grokfast.count"])

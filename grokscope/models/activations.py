"""The activation functions the models share, by config name (`model.act`)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from grokscope.errors import UsageError

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "square": lambda x: x * x,
    "tanh": F.tanh,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    if name not in ACTIVATIONS:
        raise UsageError(f"unknown model.act {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]

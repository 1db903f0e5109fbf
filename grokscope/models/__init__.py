"""Hookable models (TransformerLens `HookedRootModule` + `HookPoint`). `build_model(config, task)`.

Each model module registers its builder with `register_model`; the modules are imported when a
model is first built (TransformerLens loads only then), so a new model is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from grokscope.config import RunConfig
from grokscope.errors import UsageError


@dataclass(frozen=True)
class ModelKind:
    """A model as `model.name` chooses it: `build(config, task)` makes it, sized for the task and
    initialised from the current torch seed; `stackable`: `training.stacked` trains many at once."""

    build: Callable[[RunConfig, object], nn.Module]
    stackable: bool = False


_KINDS: dict[str, ModelKind] = {}
_LOADED: list[bool] = []


def register_model(name: str, *, stackable: bool = False):
    """Decorator on a model module's `build(config, task) -> nn.Module`."""
    def decorate(build):
        if name in _KINDS:
            raise ValueError(f"model name {name!r} is registered twice")
        _KINDS[name] = ModelKind(build, stackable)
        return build
    return decorate


def model_kinds() -> dict[str, ModelKind]:
    """Every registered model (importing this package's modules the first time: one of them may
    have been imported, and registered, before)."""
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _LOADED.append(True)
    return _KINDS


def build_model(config: RunConfig, task) -> nn.Module:
    """The model a config names, sized for the task, initialised from the current torch seed."""
    m = config.model
    kinds = model_kinds()
    if m.name not in kinds:
        raise UsageError(f"unknown model.name {m.name!r}; choose one of {', '.join(kinds)}")
    continuous = getattr(task, "is_continuous", False)
    if m.name not in ("toy", "custom") and getattr(task, "name", "").startswith("toy_"):
        raise UsageError(f"task {task.name} is Liu et al.'s toy task; use model.name=toy")
    if continuous and m.name not in ("committee", "mlp", "custom"):
        raise UsageError(f"task {task.name} has real-valued inputs; use model.name=mlp (or committee)")
    return kinds[m.name].build(config, task)

"""Datasets. `build_task(config)` makes the task a RunConfig names, with its split.

Each task module registers its builder with `base.register_task`; importing this package imports
every module in it, so a new task is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from grokscope.config import RunConfig
from grokscope.errors import UsageError
from grokscope.tasks.base import TASK_KINDS, Task, shuffled_split
from grokscope.tasks.modular import OPS

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

TASKS = tuple(TASK_KINDS)


def _kind(config: RunConfig):
    kind = TASK_KINDS.get(config.task.name)
    if kind is None:
        raise UsageError(f"unknown task.name {config.task.name!r}; choose one of {', '.join(TASKS)}")
    return kind


def build_task(config: RunConfig) -> Task:
    return _kind(config).build(config)


def describe_task(config: RunConfig) -> str:
    """The task in one line (`grokscope info`, sweep plans)."""
    return _kind(config).describe(config.task)


def task_targets(task):
    """The fixed target vector of each class (Liu et al.'s toy tasks, `train.loss=target_mse`), or None."""
    return task.info.get("targets") if hasattr(task, "info") else None


__all__ = ["OPS", "TASKS", "Task", "build_task", "describe_task", "shuffled_split", "task_targets"]

"""The `Task` every model trains on: a finite grid of inputs, labels and a stored split.

Contract (DESIGN.md, "tasks and models"): `train_inputs`, `train_labels`, `test_inputs`,
`test_labels` are tensors the model accepts directly; `all_inputs` / `all_labels` hold the whole
grid in row-major order of the operands; task structure (such as `p`) is exposed as attributes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class TaskKind:
    """A task as `task.name` chooses it: `build(config)` makes the Task (its split included),
    `describe(config.task)` says it in one line (`grokscope info`, sweep plans)."""

    build: Callable[[Any], "Task"]
    describe: Callable[[Any], str]


TASK_KINDS: dict[str, TaskKind] = {}


def register_task(name: str, describe: Callable[[Any], str]):
    """Decorator on a task module's `build(config) -> Task`: the one place that names the task,
    so a new task is one new module in this package (tasks/__init__.py imports them all)."""
    def decorate(build):
        if name in TASK_KINDS:
            raise ValueError(f"task name {name!r} is registered twice")
        TASK_KINDS[name] = TaskKind(build, describe)
        return build
    return decorate


def shuffled_split(n_total: int, frac_train: float, seed: int) -> tuple[list[int], list[int]]:
    """Nanda et al.'s rule: shuffle the row-major list with Python's `random` seeded by `seed`,
    take the first int(frac * n) as the training set. `random.Random(seed).shuffle` draws the same
    permutation as `random.seed(seed); random.shuffle(...)` in their code."""
    order = list(range(n_total))
    random.Random(seed).shuffle(order)
    n_train = int(frac_train * n_total)
    return order[:n_train], order[n_train:]


@dataclass
class Task:
    """A finite supervised task. Inputs are token ids (batch, n_ctx); labels are class ids."""

    name: str
    all_inputs: Tensor              # (n_total, n_ctx) int64
    all_labels: Tensor              # (n_total,) int64
    train_indices: Tensor           # (n_train,) int64 into the grid
    test_indices: Tensor            # (n_test,) int64 into the grid
    vocab_size: int                 # number of input tokens (operands + "=")
    n_classes: int                  # number of output classes
    info: dict[str, Any] = field(default_factory=dict)  # task structure, e.g. {"p": 113, "op": "add"}

    def __getattr__(self, name: str) -> Any:
        # Task structure as attributes (task.p, task.op, task.n) without a class per task.
        info = self.__dict__.get("info", {})
        if name in info:
            return info[name]
        raise AttributeError(f"task {self.__dict__.get('name')!r} has no attribute {name!r}")

    @property
    def n_ctx(self) -> int:
        return self.all_inputs.shape[1]

    @property
    def is_regression(self) -> bool:
        return self.all_labels.is_floating_point()

    @property
    def is_continuous(self) -> bool:
        """Inputs are real vectors (images, Gaussian inputs), not token ids."""
        return self.all_inputs.is_floating_point()

    @cached_property
    def train_inputs(self) -> Tensor:
        return self.all_inputs[self.train_indices]

    @cached_property
    def train_labels(self) -> Tensor:
        return self.all_labels[self.train_indices]

    @cached_property
    def test_inputs(self) -> Tensor:
        return self.all_inputs[self.test_indices]

    @cached_property
    def test_labels(self) -> Tensor:
        return self.all_labels[self.test_indices]

    def split_dict(self, rule: str, seed: int) -> dict[str, Any]:
        return {
            "rule": rule,
            "seed": seed,
            "n_total": int(self.all_inputs.shape[0]),
            "n_train": int(self.train_indices.numel()),
            "train_indices": self.train_indices.tolist(),
            "test_indices": self.test_indices.tolist(),
        }

    def with_split(self, split: dict[str, Any]) -> "Task":
        """This task with the split stored in a run's split.json."""
        n_total = int(self.all_inputs.shape[0])
        if split.get("n_total") != n_total:
            from grokscope.errors import CorruptFileError

            raise CorruptFileError(
                f"split.json describes {split.get('n_total')} examples but the task has {n_total}; "
                "the run's config and split disagree (was run.json edited?)")
        return Task(self.name, self.all_inputs, self.all_labels,
                    torch.tensor(split["train_indices"], dtype=torch.long),
                    torch.tensor(split["test_indices"], dtype=torch.long),
                    self.vocab_size, self.n_classes, dict(self.info))

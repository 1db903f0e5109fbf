"""Datasets. `build_task(config)` makes the task a RunConfig names, with its split."""

from __future__ import annotations

from grokscope.config import RunConfig
from grokscope.errors import UsageError
from grokscope.tasks.base import Task, shuffled_split
from grokscope.tasks.continuous import mnist_task, teacher_student_task
from grokscope.tasks.modular import OPS, modular_task
from grokscope.tasks.permutation import permutation_task
from grokscope.tasks.polynomial import polynomial_task
from grokscope.tasks.toy import toy_add_task, toy_permutation_task

TASKS = ("modular", "permutation", "polynomial", "teacher_student", "mnist", "toy_add",
         "toy_permutation")


def build_task(config: RunConfig) -> Task:
    t = config.task
    if t.name == "modular":
        return modular_task(t.op, t.p, t.frac_train, config.split_seed)
    if t.name == "permutation":
        return permutation_task(t.n, t.frac_train, config.split_seed)
    if t.name == "polynomial":
        return polynomial_task(t.d_input, t.n_train, t.n_test, config.split_seed)
    if t.name == "teacher_student":
        return teacher_student_task(t.d_input, t.teacher_hidden, t.d_output, t.n_train, t.n_test,
                                    config.split_seed)
    if t.name == "mnist":
        return mnist_task(t.data_dir, t.n_train, config.split_seed)
    if t.name == "toy_add":
        return toy_add_task(t.p, t.frac_train, t.d_target, config.split_seed, draws=t.draws,
                            regression=config.train.loss == "target_mse")
    if t.name == "toy_permutation":
        return toy_permutation_task(t.n, t.frac_train, t.d_target, config.split_seed, draws=t.draws,
                                    regression=config.train.loss == "target_mse")
    raise UsageError(f"unknown task.name {t.name!r}; choose one of {', '.join(TASKS)}")


def task_targets(task):
    """The fixed target vector of each class (Liu et al.'s toy tasks, `train.loss=target_mse`), or None."""
    return task.info.get("targets") if hasattr(task, "info") else None


__all__ = ["OPS", "TASKS", "Task", "build_task", "shuffled_split", "task_targets"]

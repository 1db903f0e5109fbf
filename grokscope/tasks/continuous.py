"""Tasks on real-valued inputs used by Omnigrok (Liu, Michaud & Tegmark 2023): a teacher-student
regression and MNIST images. Inputs are float vectors; a model called on them returns
(batch, outputs)."""

from __future__ import annotations

import math

import numpy as np
import torch

from grokscope.errors import UsageError
from grokscope.tasks.base import Task, register_task


def teacher_student_task(d_input: int, hidden: tuple[int, ...], d_output: int, n_train: int,
                         n_test: int, seed: int) -> Task:
    """x ~ N(0, I); y = teacher(x), a random tanh MLP d_input-hidden-...-d_output with
    N(0, 1/fan_in) weights and no biases (their 5-100-100-5 teacher)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, d_input, generator=g, dtype=torch.float64)
    h = x
    widths = (d_input, *hidden, d_output)
    for i in range(len(widths) - 1):
        W = torch.randn(widths[i], widths[i + 1], generator=g, dtype=torch.float64) / math.sqrt(widths[i])
        h = h @ W
        if i < len(widths) - 2:
            h = torch.tanh(h)
    return Task("teacher_student", x.float(), h.float(), torch.arange(n_train),
                torch.arange(n_train, n_train + n_test), vocab_size=0, n_classes=0,
                info={"d_input": d_input, "d_output": d_output, "regression": True})


def mnist_task(data_dir: str, n_train: int, seed: int) -> Task:
    """`n_train` training images and a test set. With the 60k training files in `data_dir`, the
    training images are drawn from them and the 10k test files are the test set; with only the
    test files, `n_train` of those are drawn for training and the rest are the test set."""
    from pathlib import Path

    from grokscope.tasks.mnist import load_mnist

    if not data_dir:
        raise UsageError("task.name=mnist needs the folder of MNIST's IDX files: --data-dir DIR "
                         "(or --set task.data_dir=DIR)")
    rng = np.random.default_rng(seed)
    test_x, test_y = load_mnist(data_dir, "t10k")
    if (Path(data_dir) / "train-images-idx3-ubyte.gz").exists():
        pool_x, pool_y = load_mnist(data_dir, "train")
        pick = np.sort(rng.permutation(len(pool_x))[:n_train])
        x = np.concatenate([pool_x[pick], test_x])
        y = np.concatenate([pool_y[pick], test_y])
        train_idx, test_idx = np.arange(n_train), np.arange(n_train, len(x))
    else:
        if n_train >= len(test_x):
            raise UsageError(f"task.n_train={n_train} leaves no test images of the {len(test_x)} in {data_dir}")
        x, y = test_x, test_y
        order = rng.permutation(len(x))
        train_idx, test_idx = np.sort(order[:n_train]), np.sort(order[n_train:])
    inputs = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    return Task("mnist", inputs, torch.from_numpy(y.astype(np.int64)), torch.from_numpy(train_idx),
                torch.from_numpy(test_idx), vocab_size=0, n_classes=10,
                info={"d_input": inputs.shape[1], "continuous": True})


@register_task("teacher_student", lambda t: f"teacher_student n_train={t.n_train} n_test={t.n_test}")
def _build_teacher_student(config) -> Task:
    t = config.task
    return teacher_student_task(t.d_input, t.teacher_hidden, t.d_output, t.n_train, t.n_test, config.split_seed)


@register_task("mnist", lambda t: f"mnist n_train={t.n_train}")
def _build_mnist(config) -> Task:
    return mnist_task(config.task.data_dir, config.task.n_train, config.split_seed)

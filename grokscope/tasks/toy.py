"""Liu et al. 2022's toy tasks ("Towards Understanding Grokking: An Effective Theory of
Representation Learning", section 3; their `toy/train_add.py`).

`toy_add`: the unordered pairs a <= b of 0..p-1 (p(p+1)/2 samples) labelled with the plain,
non-modular sum a + b (2p - 1 classes). `toy_permutation`: all ordered pairs of S_n (S3: 36)
labelled with the composition. Inputs are the two operand ids (no `=` token).

Each class also gets a fixed random target vector, N(0, 1) in `d_target` dimensions, for the
regression the paper trains (`train.loss = "target_mse"`, prediction = nearest target).

Randomness follows their code, in one of two orders (`task.draws`):

- `train_add` (their `toy/train_add.py`, the default run): `np.random.seed(seed)`, the targets
  `np.random.normal(0, 1, (n_classes, d_target))`, then the training set
  `np.random.choice(n_total, n_train, replace=False)`. So `split_seed = 58` gives the split of the
  authors' default run.
- `notebook` (their phase-diagram notebooks, `phase_diagram_plot/phase_diagram*.ipynb` and
  `toy/Figure5d_permutation.ipynb`, which trained the published grids): addition first draws an
  unused (p, d_out) matrix of input templates (d_out: d_target for the regression, n_classes for
  the classification), then the targets only for the regression (the classification's are
  one-hot), then the split; S3 draws the targets and the split, and labels the pair (i, j) with
  the composition the other way round (their `p2[p1]`: apply i first). The same seed gives another
  split than `train_add`; the model draws its initialization in the notebooks' order too
  (`models/toy.py`).

The test set is the rest in increasing order.
"""

from __future__ import annotations

import numpy as np
import torch

from grokscope.errors import UsageError
from grokscope.tasks.base import Task, register_task
from grokscope.tasks.permutation import compose, permutations

DRAWS = ("train_add", "notebook")


def toy_split(n_total: int, n_classes: int, frac_train: float, d_target: int, seed: int, *,
              draws: str = "train_add", regression: bool = True,
              unused: tuple[int, int] | None = None) -> tuple[torch.Tensor, list[int], list[int]]:
    """(targets, train ids, test ids) drawn in the order of Liu et al.'s code (`draws`);
    n_train = round(frac_train * n_total) (their p = 10 default of 45/55 is frac_train 0.82).
    `unused`: the shape of the input templates the notebooks draw and never use; `regression`:
    whether the notebooks draw the targets (the classification notebook does not, so its targets
    come from a generator of their own, leaving the split where the notebook has it)."""
    if draws not in DRAWS:
        raise UsageError(f"unknown task.draws {draws!r}; choose one of {', '.join(DRAWS)}")
    if not 0.0 < frac_train < 1.0:
        raise UsageError(f"task.frac_train must be between 0 and 1, got {frac_train}")
    if d_target < 1:
        raise UsageError(f"task.d_target must be at least 1, got {d_target}")
    n_train = int(round(frac_train * n_total))
    if not 0 < n_train < n_total:
        raise UsageError(f"task.frac_train={frac_train} leaves {n_train} of {n_total} examples "
                         "for training; choose a fraction that keeps both sets non-empty")
    rs = np.random.RandomState(seed)
    if draws == "notebook" and unused is not None:
        rs.normal(0.0, 1.0, size=unused)
    drawn = rs if draws == "train_add" or regression else np.random.RandomState(seed)
    targets = torch.tensor(drawn.normal(0.0, 1.0, size=(n_classes, d_target)), dtype=torch.float32)
    train = [int(i) for i in rs.choice(n_total, n_train, replace=False)]
    test = sorted(set(range(n_total)) - set(train))
    return targets, train, test


def toy_add_task(p: int, frac_train: float, d_target: int, seed: int, *,
                 draws: str = "train_add", regression: bool = True) -> Task:
    if not 2 <= p <= 1000:
        raise UsageError(f"task.p must be between 2 and 1000 for toy_add, got {p}")
    pairs = [(a, b) for a in range(p) for b in range(a, p)]
    n_classes = 2 * p - 1
    targets, train, test = toy_split(len(pairs), n_classes, frac_train, d_target, seed, draws=draws,
                                     regression=regression,
                                     unused=(p, d_target if regression else n_classes))
    inputs = torch.tensor(pairs, dtype=torch.long)
    return Task("toy_add", inputs, inputs.sum(1), torch.tensor(train), torch.tensor(test),
                vocab_size=p, n_classes=n_classes,
                info={"p": p, "op": "add", "modulus": None, "targets": targets})


def toy_permutation_task(n: int, frac_train: float, d_target: int, seed: int, *,
                         draws: str = "train_add", regression: bool = True) -> Task:
    if not 2 <= n <= 5:
        raise UsageError(f"task.n must be between 2 and 5 for toy_permutation, got {n}")
    elements = permutations(n)
    index = {perm: i for i, perm in enumerate(elements)}
    order = len(elements)
    pairs = [(i, j) for i in range(order) for j in range(order)]
    targets, train, test = toy_split(len(pairs), order, frac_train, d_target, seed, draws=draws,
                                     regression=regression)
    first, second = (0, 1) if draws == "train_add" else (1, 0)   # the notebook applies i first
    labels = torch.tensor([index[compose(elements[(i, j)[first]], elements[(i, j)[second]])]
                           for i, j in pairs])
    return Task(f"toy_permutation-S{n}", torch.tensor(pairs, dtype=torch.long), labels,
                torch.tensor(train), torch.tensor(test), vocab_size=order, n_classes=order,
                info={"n": n, "order": order, "targets": targets})


@register_task("toy_add", lambda t: f"toy addition (Liu et al.) p={t.p} frac_train={t.frac_train} d_target={t.d_target}")
def _build_add(config) -> Task:
    t = config.task
    return toy_add_task(t.p, t.frac_train, t.d_target, config.split_seed, draws=t.draws,
                        regression=config.train.loss == "target_mse")


@register_task("toy_permutation", lambda t: f"toy S{t.n} (Liu et al.) frac_train={t.frac_train} d_target={t.d_target}")
def _build_permutation(config) -> Task:
    t = config.task
    return toy_permutation_task(t.n, t.frac_train, t.d_target, config.split_seed, draws=t.draws,
                                regression=config.train.loss == "target_mse")

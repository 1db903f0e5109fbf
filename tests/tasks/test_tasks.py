import random

import pytest
import torch
from helpers import kumar_config

from grokscope.config import load_preset, with_overrides
from grokscope.errors import UsageError
from grokscope.tasks import build_task
from grokscope.tasks.modular import OPS, modular_task
from grokscope.tasks.permutation import compose, permutation_task, permutations


def test_polynomial_task():
    task = build_task(kumar_config())
    assert task.train_inputs.shape == (40, 12) and task.test_inputs.shape == (30, 12)
    assert task.is_regression and task.train_labels.dtype == torch.float32
    x, beta = task.all_inputs.double(), task.beta
    torch.testing.assert_close(task.all_labels.double(), 0.5 * (x @ beta) ** 2, rtol=1e-6, atol=1e-6)
    big = build_task(with_overrides(load_preset("kumar"), ["task.n_test=20000"]))
    assert big.test_inputs.double().pow(2).sum(1).mean() == pytest.approx(1.0, rel=0.02)  # x ~ N(0, I/D)


def test_teacher_student_task():
    task = build_task(load_preset("teacher-student"))
    assert task.train_inputs.shape == (100, 5) and task.train_labels.shape == (100, 5)
    assert task.is_regression and task.is_continuous
    assert 0.05 < float(task.all_labels.std()) < 5


@pytest.mark.parametrize("op, expect", [
    ("add", lambda a, b, p: (a + b) % p),
    ("sub", lambda a, b, p: (a - b) % p),
    ("mul", lambda a, b, p: (a * b) % p),
    ("div", lambda a, b, p: next(c for c in range(p) if (c * b) % p == a)),
    ("x2y2", lambda a, b, p: (a ** 2 + b ** 2) % p),
    ("x2xyy2", lambda a, b, p: (a ** 2 + a * b + b ** 2) % p),
    ("x3xy", lambda a, b, p: (a ** 3 + a * b) % p),
])
def test_labels_and_grid(op, expect):
    p = 11
    task = modular_task(op, p, 0.3, seed=0)
    n = p * (p - 1) if op == "div" else p * p
    assert task.all_inputs.shape == (n, 3)
    assert (task.all_inputs[:, 2] == p).all()  # the `=` token
    for (a, b, _), y in zip(task.all_inputs.tolist(), task.all_labels.tolist()):
        assert y == expect(a, b, p)
    if op == "div":
        assert (task.all_inputs[:, 1] != 0).all()
    assert (task.vocab_size, task.n_classes, task.p) == (p + 1, p, p)


def test_grid_is_row_major():
    task = modular_task("add", 7, 0.5, seed=0)
    assert task.all_inputs[:8, :2].tolist() == [[0, b] for b in range(7)] + [[1, 0]]


def test_split_sizes_and_nanda_rule():
    p, frac, seed = 113, 0.3, 1
    task = modular_task("add", p, frac, seed)
    assert task.train_inputs.shape[0] == 3830 and task.test_inputs.shape[0] == 12769 - 3830
    pairs = [(a, b) for a in range(p) for b in range(p)]
    random.seed(seed)
    random.shuffle(pairs)  # exactly Nanda et al.'s code
    assert [tuple(x) for x in task.train_inputs[:, :2].tolist()] == pairs[:3830]
    both = torch.cat([task.train_indices, task.test_indices]).sort().values
    assert torch.equal(both, torch.arange(p * p))


def test_split_depends_on_seed():
    a = modular_task("add", 13, 0.5, 0).train_indices
    b = modular_task("add", 13, 0.5, 1).train_indices
    assert not torch.equal(a, b)


def test_div_needs_a_prime():
    with pytest.raises(UsageError, match="not prime"):
        modular_task("div", 12, 0.3, 0)
    modular_task("add", 12, 0.3, 0)  # fine without a field


@pytest.mark.parametrize("op, p, frac", [("pow", 7, 0.3), ("add", 1, 0.3), ("add", 7, 1.0)])
def test_bad_task_settings(op, p, frac):
    with pytest.raises(UsageError):
        modular_task(op, p, frac, 0)


@pytest.mark.parametrize("n", [3, 4])
def test_permutation_group_closure(n):
    task = permutation_task(n, 0.5, 0)
    elements = permutations(n)
    order = len(elements)
    assert task.all_inputs.shape == (order * order, 3) and task.n_classes == order
    identity = elements.index(tuple(range(n)))
    for (i, j, eq), k in zip(task.all_inputs.tolist(), task.all_labels.tolist()):
        assert eq == order and 0 <= k < order
        assert elements[k] == compose(elements[i], elements[j])
    # identity row, inverses, and a non-commuting pair (S_n is not abelian for n >= 3)
    labels = task.all_labels.view(order, order)
    assert labels[identity].tolist() == list(range(order))
    assert all(identity in labels[i].tolist() for i in range(order))
    assert not torch.equal(labels, labels.T)


def test_all_ops_registered():
    assert set(OPS) == {"add", "sub", "mul", "div", "x2y2", "x2xyy2", "x3xy"}

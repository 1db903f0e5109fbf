"""Binary operations mod p with the token format `a b =` (Power et al. 2022; Nanda et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from grokscope.errors import UsageError
from grokscope.tasks.base import Task, register_task, shuffled_split

OPS: dict[str, Callable[[int, int, int], int]] = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * pow(b, -1, p)) % p,
    "x2y2": lambda a, b, p: (a * a + b * b) % p,
    "x2xyy2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x3xy": lambda a, b, p: (a ** 3 + a * b) % p,
}
NEEDS_FIELD = {"div"}  # b^-1 exists for every b != 0 only when p is prime


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, int(n ** 0.5) + 1))


def modular_task(op: str, p: int, frac_train: float, seed: int) -> Task:
    """All pairs (a, b) in row-major order (b != 0 for div); input tokens [a, b, p] where p is `=`."""
    if op not in OPS:
        raise UsageError(f"unknown task.op {op!r}; choose one of {', '.join(OPS)}")
    if p < 2:
        raise UsageError(f"task.p must be at least 2, got {p}")
    if op in NEEDS_FIELD and not is_prime(p):
        raise UsageError(f"task.op={op} needs a prime modulus, but task.p={p} is not prime; "
                         "choose a prime such as 97 or 113")
    if not 0.0 < frac_train < 1.0:
        raise UsageError(f"task.frac_train must be between 0 and 1, got {frac_train}")
    fn = OPS[op]
    b_values = range(1, p) if op == "div" else range(p)
    pairs = [(a, b) for a in range(p) for b in b_values]
    inputs = torch.tensor([(a, b, p) for a, b in pairs], dtype=torch.long)
    labels = torch.tensor([fn(a, b, p) for a, b in pairs], dtype=torch.long)
    train, test = shuffled_split(len(pairs), frac_train, seed)
    return Task(f"modular-{op}", inputs, labels, torch.tensor(train), torch.tensor(test),
                vocab_size=p + 1, n_classes=p, info={"p": p, "op": op, "equals_token": p})


@register_task("modular", lambda t: f"modular {t.op} p={t.p} frac_train={t.frac_train}")
def _build(config) -> Task:
    t = config.task
    return modular_task(t.op, t.p, t.frac_train, config.split_seed)

"""`task.draws = "notebook"`: the split, the targets and the initialization Liu et al.'s
phase-diagram notebooks draw from a seed, checked against an independent re-statement of the
notebooks' first lines (numpy and torch called in their order, nn.Linear layers built as theirs)."""

import numpy as np
import pytest
import torch
from torch import nn

from grokscope.config import load_preset, with_overrides
from grokscope.models import build_model
from grokscope.tasks import build_task


class _Net(nn.Module):   # their NET: three nn.Linear layers, built in this order
    def __init__(self, n_in, n_out, w=200):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(n_in, w), nn.Linear(w, w), nn.Linear(w, n_out)


def _notebook_addition(seed: int, classification: bool):
    """phase_diagram.ipynb (regression) and phase_diagram-classification.ipynb."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    d_out = 19 if classification else 30
    np.random.normal(0, 1, size=(10, d_out))                  # x_templates, unused
    targets = None if classification else np.random.normal(0, 1, size=(19, d_out))
    train = np.random.choice(55, 45, replace=False)
    _Net(10, 1)                                               # the encoder, unused
    dec = _Net(1, d_out)
    latent = torch.rand(10, 1) - 1 / 2
    return targets, train, dec, latent


def _notebook_s3(seed: int):
    """toy/Figure5d_permutation.ipynb: 6 permutations of (0, 1, 2) in their recursive order (the
    lexicographic one), label of (i, j) = p2[p1], latent scale 0.1."""
    import itertools

    np.random.seed(seed)
    torch.manual_seed(seed)
    perms = [list(p) for p in itertools.permutations(range(3))]
    targets = np.random.normal(0, 1, size=(6, 30))
    labels = [perms.index(list(np.array(perms[j])[np.array(perms[i])])) for i in range(6) for j in range(6)]
    train = np.random.choice(36, 24, replace=False)
    _Net(1, 9)
    dec = _Net(9, 30)
    latent = (torch.rand(6, 9) - 1 / 2) * 0.1
    return targets, labels, train, dec, latent


def _ours(preset: str, overrides: list[str]):
    config = with_overrides(load_preset(preset), ["task.draws=notebook", *overrides])
    task = build_task(config)
    torch.manual_seed(config.train.seed)
    return task, build_model(config, task)


def _same_decoder(model, dec) -> None:
    ours = [(b.mlp.W_in, b.mlp.b_in) for b in model.blocks] + [(model.unembed.W_U, model.unembed.b_U)]
    for (W, b), layer in zip(ours, (dec.l1, dec.l2, dec.l3)):
        assert torch.equal(W.detach(), layer.weight.detach().T)
        assert torch.equal(b.detach(), layer.bias.detach())


@pytest.mark.parametrize("classification", [False, True])
def test_notebook_draws_match_the_addition_notebooks(classification):
    seed = 6 if classification else 58
    loss = ["train.loss=cross_entropy"] if classification else []
    task, model = _ours("liu-toy", [f"task.split_seed={seed}", f"train.seed={seed}", *loss])
    targets, train, dec, latent = _notebook_addition(seed, classification)
    assert task.train_indices.tolist() == [int(i) for i in train]
    if targets is not None:
        assert torch.equal(task.info["targets"], torch.tensor(targets, dtype=torch.float32))
    _same_decoder(model, dec)
    assert torch.equal(model.embed.W_E.detach(), latent)


def test_notebook_draws_match_the_s3_notebook():
    task, model = _ours("liu-s3", ["task.split_seed=0", "train.seed=0", "model.embed_scale=0.1"])
    targets, labels, train, dec, latent = _notebook_s3(0)
    assert task.train_indices.tolist() == [int(i) for i in train]
    assert torch.equal(task.info["targets"], torch.tensor(targets, dtype=torch.float32))
    assert task.all_labels.tolist() == labels
    _same_decoder(model, dec)
    assert torch.equal(model.embed.W_E.detach(), latent)


def test_the_default_order_is_unchanged_and_differs_from_the_notebooks():
    """train_add stays the default run's order; the notebook order is another split from the same seed."""
    config = load_preset("liu-toy")
    default = build_task(config)
    notebook = build_task(with_overrides(config, ["task.draws=notebook"]))
    rs = np.random.RandomState(58)
    rs.normal(0, 1, size=(19, 30))
    assert default.train_indices.tolist() == [int(i) for i in rs.choice(55, 45, replace=False)]
    assert default.train_indices.tolist() != notebook.train_indices.tolist()


def test_unknown_draws_is_a_usage_error():
    from grokscope.errors import UsageError

    with pytest.raises(UsageError, match="task.draws"):
        build_task(with_overrides(load_preset("liu-toy"), ["task.draws=paper"]))

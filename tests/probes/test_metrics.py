"""metrics and weights: each checkpoint's losses and accuracies, and its weight norm, against a
forward pass and a sum written here (and the trainer's own log at the same steps)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grokscope.analysis import analyze


@pytest.fixture(scope="module")
def tables(tiny_run, tmp_path_factory):
    return analyze(tiny_run, ["metrics", "weights"], out=tmp_path_factory.mktemp("m"), every=40, progress=False,
                   report=False)


def test_losses_and_accuracies_are_a_forward_pass_on_the_stored_split(tiny_run, tables):
    t, task = tables["metrics"], tiny_run.task
    assert list(t["step"]) == [0, 40, 80, 120]
    for i, step in enumerate(t["step"]):
        logits = tiny_run.model(int(step))(task.all_inputs).double()
        for split in ("train", "test"):
            idx = getattr(task, f"{split}_indices")
            loss = F.cross_entropy(logits[idx], task.all_labels[idx]).item()
            acc = (logits[idx].argmax(-1) == task.all_labels[idx]).double().mean().item()
            assert t[f"{split}_loss"][i] == pytest.approx(loss, rel=1e-9)
            assert t[f"{split}_acc"][i] == acc
    logged = {int(s): i for i, s in enumerate(tiny_run.metrics["step"])}
    for i, step in enumerate(t["step"]):   # the trainer logged the same numbers at these steps
        j = logged[int(step)]
        assert t["test_loss"][i] == pytest.approx(tiny_run.metrics["test_loss"][j], rel=1e-5)
        assert t["train_acc"][i] == tiny_run.metrics["train_acc"][j]


def test_the_weight_norm_is_the_root_of_the_summed_squares(tiny_run, tables):
    t = tables["weights"]
    for i, step in enumerate(t["step"]):
        state = tiny_run.state_dict(int(step))
        squares = {k: float((v.double() ** 2).sum()) for k, v in state.items() if v.is_floating_point()}
        assert t["weight_norm"][i] == pytest.approx(math.sqrt(sum(squares.values())), rel=1e-12)
        assert t["norm.embed.W_E"][i] == pytest.approx(math.sqrt(squares["embed.W_E"]), rel=1e-12)
    assert np.isfinite(t["sum_sq_weights"]).all()
    torch.testing.assert_close(torch.tensor(t["sum_sq_weights"]), torch.tensor(t["weight_norm"]) ** 2)

"""progress: its train and test losses against a forward pass, and the restricted loss below that
of constant logits at the end (the measure's projections are tested in
tests/measures/test_restricted.py)."""

import math

import numpy as np
import pytest
import torch.nn.functional as F

from grokscope.analysis import analyze


def test_losses_are_a_forward_pass_and_the_restricted_loss_keeps_only_the_keys(tiny_run, tmp_path):
    t = analyze(tiny_run, ["progress"], out=tmp_path / "p", every=60, progress=False, report=False)["progress"]
    task = tiny_run.task
    for i, step in enumerate(t["step"]):
        logits = tiny_run.model(int(step))(task.all_inputs).double()
        assert t["train_loss"][i] == pytest.approx(F.cross_entropy(logits[task.train_indices],
                                                                   task.train_labels).item(), rel=1e-9)
        assert t["test_loss"][i] == pytest.approx(F.cross_entropy(logits[task.test_indices],
                                                                  task.test_labels).item(), rel=1e-9)
        assert np.isfinite(t["restricted_loss"][i]) and np.isfinite(t["excluded_loss"][i])
        assert str(t["key_frequencies"][i]).split()
    # with no key frequency kept the restricted loss would be that of constant logits: log p. The
    # keys carry the answer in a trained model, so at the end it is below that
    assert t["restricted_loss"][-1] < math.log(task.p)

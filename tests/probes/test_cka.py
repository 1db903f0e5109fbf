"""cka: linear CKA of each checkpoint's activations against the final and the first checkpoint's,
against the formula written here (centered Gram matrices), and 1 at the reference itself."""

import numpy as np
import pytest

from grokscope.analysis import analyze


def cka(X, Y):
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def last_position(run, step, hook):
    model = run.model(step)
    x = run.task.test_inputs
    _, cache = model.run_with_cache(x, names_filter=lambda n: n == hook)
    act = cache[hook][:, -1].double().numpy()
    return act.reshape(act.shape[0], -1)


def test_cka_against_the_final_and_first_checkpoints(tiny_run, tmp_path):
    t = analyze(tiny_run, ["cka"], out=tmp_path / "c", every=40, progress=False, report=False)["cka"]
    hook = "blocks.0.hook_resid_mid"
    steps = list(t["step"])
    first, last = steps.index(tiny_run.steps[0]), steps.index(tiny_run.steps[-1])
    assert t[f"cka_final.{hook}"][last] == pytest.approx(1.0, abs=1e-12)
    assert t[f"cka_first.{hook}"][first] == pytest.approx(1.0, abs=1e-12)
    final = last_position(tiny_run, tiny_run.steps[-1], hook)
    for i, step in enumerate(steps):
        assert t[f"cka_final.{hook}"][i] == pytest.approx(cka(last_position(tiny_run, int(step), hook), final),
                                                          rel=1e-9)

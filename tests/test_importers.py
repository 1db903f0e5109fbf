import json

import pytest
import torch
import torch.nn.functional as F
from helpers import SHARED, run_cli

from grokscope.analysis import analyze
from grokscope.external.importers import import_nanda, nanda_state_dict

FIXTURE = SHARED / "fixtures" / "nanda_p113_wd0.1_seed1_final.pth"


pytestmark = pytest.mark.skipif(not FIXTURE.exists(), reason="needs ../shared/fixtures")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return import_nanda(FIXTURE, tmp_path_factory.mktemp("imp") / "nanda-published")


def _undo_last_adamw_step(weights: dict, optimizer: dict) -> dict:
    """The file's weights are after one more AdamW update than its stored losses; invert it:
    theta_new = theta_old (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)."""
    group = optimizer["param_groups"][0]
    lr, wd, (b1, b2), eps = group["lr"], group["weight_decay"], group["betas"], group["eps"]
    names = [k for k in weights if not k.endswith("mask")]
    out = {}
    for i, name in enumerate(names):
        st = optimizer["state"][i]
        t = float(st["step"])
        m, v = st["exp_avg"].double(), st["exp_avg_sq"].double()
        assert m.shape == weights[name].shape
        update = (lr / (1 - b1 ** t)) * m / (v.sqrt() / (1 - b2 ** t) ** 0.5 + eps)
        out[name] = (weights[name].double() + update) / (1 - lr * wd)
    return out


def test_reproduces_the_stored_losses_to_4_significant_digits(imported):
    data = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    before = _undo_last_adamw_step(data["model"], data["optimizer"])
    model = imported.new_model().double()
    model.load_state_dict(nanda_state_dict(before, 113))
    task = imported.task
    with torch.no_grad():
        logits = model(task.all_inputs)
    train = F.cross_entropy(logits[task.train_indices], task.train_labels).item()
    test = F.cross_entropy(logits[task.test_indices], task.test_labels).item()
    assert f"{train:.4g}" == f"{data['train_loss'].item():.4g}"   # 9.203e-09
    assert f"{test:.4g}" == f"{data['test_loss'].item():.4g}"     # 4.992e-07


def test_imported_run_is_a_normal_run(imported):
    assert imported.steps == [107791]
    info = imported.info
    assert info["config"]["optim"]["weight_decay"] == 0.1  # from the optimizer state, not the config
    assert len(imported.task.train_indices) == 3830
    m = imported.metrics
    assert m["step"][-1] == 107791 and m["train_acc"][-1] == 1.0 and m["test_acc"][-1] == 1.0
    # the saved weights are one update past the stored losses: within 0.1% of them
    assert m["train_loss"][-1] == pytest.approx(info["imported"]["stored_train_loss"], rel=1e-3)
    assert m["test_loss"][-1] == pytest.approx(info["imported"]["stored_test_loss"], rel=1e-3)
    assert m["test_loss"][0] == pytest.approx(4.73, abs=0.1)  # their log at step 0, chance level


def test_probes_on_the_published_model(imported, tmp_path):
    tables = analyze(imported, out=tmp_path / "a", progress=False)
    f = tables["fourier"]
    assert f["key_frequencies"][-1] == "6 23 37 39 41"
    assert f["gini_embed"][-1] > 0.5 and f["key_energy_share"][-1] > 0.8
    # ReLU puts part of a neuron's variance in harmonics (2k, 3k): 36% pass the 85% bar, but
    # 95% of neurons have a key frequency as their best one
    assert f["neuron_single_freq_share"][-1] > 0.3
    assert f["neuron_best_on_key_share"][-1] > 0.9
    p = tables["progress"]
    assert p["restricted_loss"][-1] < 1e-3 < p["excluded_loss"][-1]


def test_import_cli_and_refusal(tmp_path):
    out = tmp_path / "imp"
    r = run_cli("import", "nanda", FIXTURE, "--out", out)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    r = run_cli("import", "nanda", FIXTURE, "--out", out)
    assert r.returncode == 2 and "already holds" in r.stderr
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    r = run_cli("import", "nanda", bad, "--out", tmp_path / "x")
    assert r.returncode == 1 and "could not be loaded" in r.stderr and "Traceback" not in r.stderr

"""`grokscope reproduce kumar-modadd`: Kumar et al. 2024 App. 8.3 at the paper's settings, and the
model, loss and checks it stands on, each against an independent computation."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import cli

from grokscope.config import load_preset, with_overrides
from grokscope.measures.losses import loss_and_accuracy
from grokscope.models import build_model
from grokscope.reproduce import RunData
from grokscope.reproduce.kumar import modadd_checks
from grokscope.tasks import build_task


def test_unit_init_is_the_papers_model_written_out():
    """f(x) = s/(D N) W2 (W1 x)^2 with N(0, 1) weights and one-hot operands, computed by hand."""
    config = load_preset("kumar-modadd")
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task).double()
    W1, W2 = model.blocks[0].mlp.W_in.detach(), model.unembed.W_U.detach()
    D, N = W1.shape
    assert (D, N) == (46, 100) and W2.shape == (100, 23)
    assert abs(W1.std().item() - 1) < 0.05 and abs(W2.std().item() - 1) < 0.05  # N(0, 1), not N(0, 1/fan_in)
    tokens = task.test_inputs[:7]
    x = torch.cat([F.one_hot(tokens[:, 0], 23), F.one_hot(tokens[:, 1], 23)], 1).double()
    expected = 1.0 / (D * N) * ((x @ W1) ** 2) @ W2
    assert torch.allclose(model(tokens), expected, atol=1e-12)
    s2 = build_model(with_overrides(config, ["model.alpha=2"]), task).double()
    s2.load_state_dict(model.state_dict())
    assert torch.allclose(s2(tokens), 2 * expected, atol=1e-12)


def test_sse_sums_over_outputs_and_averages_over_examples():
    out, labels = torch.randn(5, 23, dtype=torch.float64), torch.tensor([0, 3, 22, 7, 7])
    sse, acc = loss_and_accuracy(out, labels, "sse", torch.float64)
    y = torch.nn.functional.one_hot(labels, 23).double()
    assert sse.item() == pytest.approx(((out - y) ** 2).sum(1).mean().item(), rel=1e-12)
    mse, _ = loss_and_accuracy(out, labels, "mse", torch.float64)
    assert sse.item() == pytest.approx(23 * mse.item(), rel=1e-12)
    assert acc.item() == (out.argmax(1) == labels).double().mean().item()


def fake_run(s, train_at, test_at, steps=3000, norm_growth=3.0, final_test=0.01):
    step = np.arange(steps + 1)
    return RunData(f"s{s}", {"model.alpha": s}, 0, "complete", {
        "step": step, "train_acc": (step >= train_at).astype(float), "test_acc": (step >= test_at).astype(float),
        "weight_norm": np.linspace(80, 80 * norm_growth, steps + 1), "test_loss": np.full(steps + 1, final_test),
    }, {}, {})


def test_the_checks_can_fail():
    good = {"s-sweep": [fake_run(1.0, 1000, 1200), fake_run(2.0, 2000, 2600)]}
    checks = modadd_checks("quick", good)
    assert all(c.ok for c in checks if c.ok is not None)
    assert [c.quantity for c in checks if c.ok is None] == ["s = 1: weight norm over training"]  # reported
    bad = {"s-sweep": [fake_run(1.0, 20000, 10 ** 9, steps=30000, norm_growth=1.0, final_test=1.2),
                       fake_run(2.0, 2000, 2010)]}
    verdicts = {c.quantity: c.ok for c in modadd_checks("quick", bad) if c.ok is not None}
    assert len(verdicts) == 4 and not any(verdicts.values()), verdicts   # too slow, never generalizes, loss above zeros
    never = {"s-sweep": [fake_run(1.0, 1000, 10 ** 9), fake_run(2.0, 2000, 10 ** 9)]}
    verdicts = {c.quantity: c.ok for c in modadd_checks("quick", never) if c.ok is not None}
    assert verdicts["s = 1: steps to 100% train accuracy"] is True and not all(verdicts.values())


def test_reproduce_lists_and_rejects_bad_input(tmp_path):
    r = cli("reproduce")
    assert r.returncode == 0 and "kumar-modadd" in r.stdout
    for args, words in ((("reproduce", "nope"), "unknown reproduction 'nope'"),
                        (("reproduce", "kumar-modadd", "--scale", "huge"), "unknown --scale 'huge'"),
                        (("reproduce", "kumar-modadd", "--jobs", "0"), "--jobs must be at least 1"),
                        (("reproduce", "kumar-modadd", "--set", "train.nope=1"), "unknown config key 'train.nope'"),
                        (("reproduce", "kumar-modadd", "--set", "train.flush_denormals=maybe"),
                         "train.flush_denormals must be true or false")):
        r = cli(*args, "--out", tmp_path / "x")
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_quick_scale_reproduces_the_papers_shape_and_reuses_its_runs(tmp_path):
    out = tmp_path / "km"
    r = cli("reproduce", "kumar-modadd", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "results.json").read_text())
    assert [c["ok"] for c in result["checks"]] == [True, True, None, True, True], result["checks"]  # norm: reported
    for name in ("figure.png", "figure.pdf", "figure.svg", "figure.csv", "figure.json", "results.csv", "report.md",
                 "report.html"):
        assert (out / name).exists(), name
    md = (out / "report.md").read_text()
    assert "| quantity | paper | ours | within tolerance? |" in md and "App. 8.3" in md
    # s = 1 memorizes near step 1k and generalizes within a few hundred steps; s = 2 later and slower
    rows = {c["quantity"]: c["ours"] for c in result["checks"]}
    train = int(rows["s = 1: steps to 100% train accuracy"].replace(",", ""))
    assert 600 <= train <= 1500
    mtime = (out / "s-sweep" / "runs").stat().st_mtime_ns
    checkpoints = sorted(p.stat().st_mtime_ns for p in (out / "s-sweep" / "runs").rglob("*.safetensors"))
    r = cli("reproduce", "kumar-modadd", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.stat().st_mtime_ns for p in (out / "s-sweep" / "runs").rglob("*.safetensors")) == checkpoints
    assert mtime == (out / "s-sweep" / "runs").stat().st_mtime_ns


def test_a_setting_applies_to_every_run_and_the_page_names_it(tmp_path, monkeypatch):
    """`reproduce --set`: every run gets the value, the default folder and the page's command line
    name it, and the paper's own runs (in their own folder) are never reused for it."""
    from grokscope.reproduce import default_out, reproduce
    from grokscope.store import load_run

    assert default_out("kumar-modadd", "quick") == Path("reproductions/kumar-modadd/quick")
    settings = ("train.flush_denormals=true", "train.steps=50")   # 50 steps: the plumbing, not the paper
    flushed = default_out("kumar-modadd", "quick", settings)
    assert flushed == Path("reproductions/kumar-modadd/quick_flush_denormalstrue_steps50")
    monkeypatch.chdir(tmp_path)
    out = reproduce("kumar-modadd", "quick", jobs=1, progress=False, overrides=settings)
    assert out == flushed
    runs = [load_run(r) for r in sorted((out / "s-sweep" / "runs").iterdir())]
    assert runs and all(r.config.train.flush_denormals and r.steps[-1] == 50 for r in runs)
    command = json.loads((out / "results.json").read_text())["meta"]["command"]
    assert command == ("grokscope reproduce kumar-modadd --scale quick --set train.flush_denormals=true "
                       "--set train.steps=50")
    assert command in (out / "report.md").read_text()


@pytest.mark.slow
def test_full_scale_matches_the_paper(tmp_path):
    """The paper's sweep s in {0.5, 1, 1.5, 2}: every check within tolerance, train time and delay
    growing with s (about 2 minutes on 2 cores)."""
    r = cli("reproduce", "kumar-modadd", "--scale", "full", "--out", tmp_path / "km", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "km" / "results.json").read_text())
    assert all(c["ok"] is not False for c in result["checks"]), result["checks"]
    assert math.isclose(float(result["meta"]["parts"][0]["grid"][0].split("=")[1].split(",")[0]), 0.5)

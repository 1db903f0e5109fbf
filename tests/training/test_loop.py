import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import kumar_config

from grokscope.config import CheckpointConfig, load_preset, with_overrides
from grokscope.errors import UsageError
from grokscope.files import load_tensors
from grokscope.tasks import build_task
from grokscope.training import train
from grokscope.training.optim import lr_at
from grokscope.training.schedule import checkpoint_schedule


def test_regression_training_and_bad_combinations(tmp_path):
    run = train(kumar_config("train.steps=200", "train.log_every=1"), tmp_path / "k", progress=False)
    m = run.metrics
    assert torch.isnan(torch.tensor(m["train_acc"])).all()
    assert m["train_loss"][-1] < m["train_loss"][0]
    with pytest.raises(UsageError, match="regression: set train.loss=mse"):
        train(kumar_config("train.loss=cross_entropy"), tmp_path / "x", progress=False)
    with pytest.raises(UsageError, match="has real-valued inputs; use model.name=mlp"):
        train(kumar_config("model.name=transformer"), tmp_path / "y", progress=False)


CHILD = Path(__file__).with_name("_train_child.py")


def test_tiny_run_memorizes_and_writes_the_contract(tiny, tmp_path):
    run = train(tiny(train={"steps": 150}), tmp_path / "r", progress=False)
    m = run.metrics
    assert list(m) == ["step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr"]
    assert m["step"].tolist() == list(range(151))
    assert m["train_acc"][-1] == 1.0 and m["train_loss"][-1] < m["train_loss"][0] / 10
    assert run.memorization_step is not None
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "complete" and info["schedule"] == run.steps
    assert info["config"]["train"]["steps"] == 150 and "torch_version" in info
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert torch.equal(run.task.train_indices, torch.tensor(split["train_indices"]))
    assert len(split["train_indices"]) == int(0.5 * 169)
    _, meta = load_tensors(run.checkpoint_path(150))
    assert meta["step"] == "150"


def test_checkpoint_reproduces_logged_metrics(tiny, tmp_path):
    """run.model(step) on run.task gives the losses the trainer logged at that step."""
    run = train(tiny(), tmp_path / "r", progress=False)
    m = run.metrics
    for step in (0, 20, 60):
        model = run.model(step)
        with torch.no_grad():
            logits = model(run.task.test_inputs).double()
        loss = torch.nn.functional.cross_entropy(logits, run.task.test_labels).item()
        assert loss == pytest.approx(m["test_loss"][step], rel=1e-6)
        assert np.isclose(m["weight_norm"][step],
                          torch.cat([p.flatten() for p in model.parameters()]).norm().item(), rtol=1e-5)


def test_schedule_is_dense_early_and_regular_later():
    cfg = CheckpointConfig()
    s = checkpoint_schedule(40_000, cfg)
    assert s[:101] == list(range(101)) and s[-1] == 40_000
    assert set(range(0, 40_001, 200)) <= set(s)  # a transition dated within 0.5% of the run
    gaps = np.diff(s)
    assert gaps.max() <= 200
    assert 350 < len(s) < 500
    assert checkpoint_schedule(5, cfg) == [0, 1, 2, 3, 4, 5]
    explicit = checkpoint_schedule(1000, CheckpointConfig(every=250, dense_until=3, log_points=0))
    assert explicit == [0, 1, 2, 3, 250, 500, 750, 1000]


def test_warmup_matches_nanda_lambda_lr(tiny):
    c = tiny(optim={"warmup_steps": 10, "lr": 1e-3})
    assert [lr_at(c, s) for s in (0, 1, 5, 10, 11)] == pytest.approx([0, 1e-4, 5e-4, 1e-3, 1e-3])


@pytest.mark.parametrize("sections", [
    {"optim": {"name": "sgd", "momentum": 0.9, "lr": 0.5}},
    {"optim": {"name": "adam", "weight_decay": 0.0}},
    {"optim": {"grokfast": "ema"}},
    {"optim": {"grokfast": "ma", "grokfast_window": 5}},
    {"train": {"loss": "mse", "loss_dtype": "float32"}},
    {"train": {"batch_size": 16}},
    {"model": {"name": "mlp", "hidden": (32,), "centered": True, "alpha": 2.0, "alpha_lr": True}},
])
def test_training_variants_run_and_learn(tiny, tmp_path, sections):
    run = train(tiny(**sections), tmp_path / "r", progress=False)
    m = run.metrics
    assert np.isfinite(m["train_loss"]).all()
    assert m["train_loss"][-1] < m["train_loss"][:5].max()


def test_grokfast_changes_the_trajectory(tiny, tmp_path):
    a = train(tiny(), tmp_path / "a", progress=False).metrics["train_loss"]
    b = train(tiny(optim={"grokfast": "ema"}), tmp_path / "b", progress=False).metrics["train_loss"]
    assert a[0] == b[0] and a[-1] != b[-1]  # same init, different updates


def test_runs_are_deterministic(tiny, tmp_path):
    a = train(tiny(train={"batch_size": 16}), tmp_path / "a", progress=False)
    b = train(tiny(train={"batch_size": 16}), tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    assert torch.equal(a.state_dict(60)["embed.W_E"], b.state_dict(60)["embed.W_E"])


def _files(run_dir: Path) -> dict[str, bytes]:
    out = {"metrics.csv": (run_dir / "metrics.csv").read_bytes()}
    for p in sorted((run_dir / "checkpoints").glob("*.safetensors")):
        out[p.name] = p.read_bytes()
    return out


def test_resume_after_an_interrupt_is_bit_identical(tiny, tmp_path, monkeypatch):
    """In-process: Ctrl-C after update 77 saves the resume state; resuming gives the files of
    an uninterrupted run byte for byte (the real-signal variant below is `slow`)."""
    from grokscope.training.loop import PlainStepper, TrainingInterrupted

    config = tiny(train={"steps": 150, "batch_size": 32}, optim={"grokfast": "ema"},
                  checkpoint={"every": 3, "resume_seconds": 0.0})
    train(config, tmp_path / "ref", progress=False)
    update = PlainStepper.update

    def interrupting(self, lr):
        update(self, lr)
        if self.step == 77:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(PlainStepper, "update", interrupting)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 78"):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(PlainStepper, "update", update)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"
    train(config, tmp_path / "cut", resume=True, progress=False)
    assert _files(tmp_path / "cut") == _files(tmp_path / "ref")


@pytest.mark.slow  # two fresh processes (~5 s of imports each); .ci/run runs these too
@pytest.mark.parametrize("how", ["sigkill", "sigint"])
def test_resume_after_real_interrupt_is_bit_identical(tiny, tmp_path, how):
    config = tiny(train={"steps": 150, "threads": 1, "batch_size": 32},
                  optim={"grokfast": "ema"},
                  checkpoint={"every": 3, "resume_seconds": 0.0})
    train(config, tmp_path / "ref", progress=False)

    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, str(CHILD), json.dumps(config.to_dict()), str(out)])
    state = out / "resume" / "state.safetensors"
    deadline = time.time() + 60
    while time.time() < deadline and not (state.exists() and len(list((out / "checkpoints").glob("*"))) > 35):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
    code = child.wait(60)
    assert code == (-signal.SIGKILL if how == "sigkill" else 130)
    status = json.loads((out / "run.json").read_text())["status"]
    assert status == ("running" if how == "sigkill" else "interrupted")
    # a SIGKILL mid-write may leave a hidden `.name.xxx.tmp`, never a half file under the real name
    assert all(p.name.startswith(".") for p in out.rglob("*.tmp"))
    if how == "sigint":
        assert not list(out.rglob("*.tmp"))
    for p in (out / "checkpoints").glob("*.safetensors"):
        load_tensors(p)  # whole (the header's size matches the file)
    assert len(list((out / "checkpoints").glob("*"))) < len(list((tmp_path / "ref" / "checkpoints").glob("*")))

    subprocess.run([sys.executable, str(CHILD), json.dumps(config.to_dict()), str(out), "resume"], check=True)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert not list(out.rglob("*.tmp"))  # resuming clears a killed writer's temp files
    assert _files(out) == _files(tmp_path / "ref")


def test_refuses_an_out_dir_holding_something_else(tiny, tmp_path):
    train(tiny(), tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "metrics.csv").read_bytes()
    with pytest.raises(UsageError, match="holds a different run"):
        train(tiny(train={"seed": 1}), tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="already holds this run"):
        train(tiny(), tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "metrics.csv").read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        train(tiny(), tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_bad_task_fails_before_writing(tiny, tmp_path):
    with pytest.raises(UsageError, match="not prime"):
        train(tiny(task={"op": "div", "p": 12}), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("preset", ["nanda", "power", "mlp", "quickstart", "kumar", "kumar-quick", "kumar-modadd"])
def test_every_preset_trains(preset, tmp_path):

    config = with_overrides(load_preset(preset), ["train.steps=2"])
    run = train(config, tmp_path / preset, progress=False)
    assert run.steps == [0, 1, 2] and np.isfinite(run.metrics["train_loss"]).all()


@pytest.mark.parametrize("model", [{}, {"name": "mlp", "hidden": (16,), "d_embed": 4}])
def test_fixed_norm_is_held_after_every_step(tiny, tmp_path, model):
    from grokscope.training.state import default_init_norm

    config = tiny(model={**model, "init_scale": 3.0}, optim={"weight_decay": 0.0},
                  train={"fixed_norm": 0.8, "steps": 40})
    run = train(config, tmp_path / "r", progress=False)
    w0 = default_init_norm(config, build_task(config))
    norms = run.metrics["weight_norm"]
    assert np.allclose(norms, 0.8 * w0, rtol=1e-6, atol=0)
    assert run.info["fixed_norm"] == pytest.approx(0.8 * w0)
    assert run.metrics["train_loss"][-1] < run.metrics["train_loss"][0]
    absolute = train(tiny(optim={"weight_decay": 0.0}, train={"fixed_norm": 5.0, "fixed_norm_absolute": True,
                                                              "steps": 5}), tmp_path / "a", progress=False)
    assert np.allclose(absolute.metrics["weight_norm"], 5.0, rtol=1e-6)


def test_fixed_norm_refuses_weight_decay(tiny, tmp_path):
    with pytest.raises(UsageError, match="set optim.weight_decay=0"):
        train(tiny(train={"fixed_norm": 0.8}), tmp_path / "r", progress=False)


def test_resume_removes_a_killed_writers_temp_files(tiny, tmp_path):
    out = tmp_path / "r"
    train(tiny(), out, progress=False)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "running"}))  # as after a SIGKILL
    stale = out / "checkpoints" / ".step_00000061.safetensors.abc123.tmp"
    stale.write_bytes(b"half")
    train(None, out, resume=True, progress=False)
    assert not stale.exists()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"

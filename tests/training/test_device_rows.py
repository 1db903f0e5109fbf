"""On a device other than the CPU the trainer keeps each step's metrics on the device and reads
them in batches: no host read in the steady-state step, the same files as on the CPU.

Run on the stand-in device (tests/stand_in_device.py: CPU arithmetic, a device's rules, host
reads counted), so CI checks what a GPU run does without a GPU.
"""

import pytest
from helpers import tiny_config
from stand_in_device import DEVICE, on_stand_in

from grokscope.files import read_json
from grokscope.training import TrainingDiverged, train
from grokscope.training.loop import PlainStepper

SPARSE = {"dense_until": 0, "log_points": 0, "every": 1000, "resume_seconds": 1e9}


def files(path):
    return {f.relative_to(path).as_posix(): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.suffix in (".csv", ".safetensors") and "resume" not in f.parts}


def test_rows_read_in_batches_give_the_cpus_files(tmp_path, monkeypatch):
    monkeypatch.setattr(PlainStepper, "SETTLE_ROWS", 16)  # several batches in 60 steps
    config = tiny_config(train={"steps": 60})
    train(config, tmp_path / "cpu", progress=False)
    with on_stand_in():
        train(config, tmp_path / "dev", progress=False, device=DEVICE)
    cpu, dev = files(tmp_path / "cpu"), files(tmp_path / "dev")
    assert cpu.keys() == dev.keys() and "metrics.csv" in cpu
    assert all(cpu[k] == dev[k] for k in cpu), [k for k in cpu if cpu[k] != dev[k]]
    assert read_json(tmp_path / "dev" / "run.json")["generalization_step"] == \
        read_json(tmp_path / "cpu" / "run.json")["generalization_step"]


def test_no_host_read_in_the_steady_state_step(tmp_path):
    """Twice the steps, the same number of host reads: a step between checkpoints reads nothing."""
    reads = {}
    for steps in (40, 80):
        with on_stand_in() as mode:
            train(tiny_config(train={"steps": steps}, checkpoint=SPARSE), tmp_path / str(steps), progress=False,
                  device=DEVICE)
        reads[steps] = mode.host_reads
    assert reads[80] == reads[40], reads


def test_divergence_found_in_a_batch_stops_at_the_same_step(tmp_path, monkeypatch):
    monkeypatch.setattr(PlainStepper, "SETTLE_ROWS", 8)
    config = tiny_config(optim={"lr": 1e6}, train={"steps": 200})
    with pytest.raises(TrainingDiverged) as on_cpu:
        train(config, tmp_path / "cpu", progress=False)
    with on_stand_in(), pytest.raises(TrainingDiverged) as on_device:
        train(config, tmp_path / "dev", progress=False, device=DEVICE)
    assert str(on_device.value).replace("/dev:", "/cpu:") == str(on_cpu.value)
    cpu, dev = read_json(tmp_path / "cpu" / "run.json"), read_json(tmp_path / "dev" / "run.json")
    assert dev["status"] == cpu["status"] == "diverged"
    assert dev["diverged_at_step"] == cpu["diverged_at_step"]
    assert files(tmp_path / "dev") == files(tmp_path / "cpu")  # no checkpoint after the non-finite step


def test_early_stop_reads_every_row():
    """Rows read late, in a batch, are still checked one by one: the generalization step is the
    first row at 99% test accuracy, not the batch's last row."""
    from types import SimpleNamespace

    from grokscope.training.loop import early_stop_due

    st = SimpleNamespace(diverged_at=None, writer=SimpleNamespace(rows=[]))
    stepper = SimpleNamespace(runs=[st], config=tiny_config(train={"stop_after": 10}))
    row = lambda step, test_acc: (step, 0.1, 1.0, 0.5, test_acc, 3.0, 1e-3)
    generalized, scanned = {id(st): None}, {}
    st.writer.rows += [row(0, 0.1), row(1, 0.2)]
    assert not early_stop_due(stepper, generalized, 1, scanned) and generalized[id(st)] is None
    st.writer.rows += [row(2, 0.5), row(3, 0.995), row(4, 0.99), row(5, 1.0)]  # one batch from the device
    assert not early_stop_due(stepper, generalized, 5, scanned)
    assert generalized[id(st)] == 3
    assert not early_stop_due(stepper, generalized, 12, scanned) and early_stop_due(stepper, generalized, 13, scanned)


@pytest.fixture
def parts_on_the_stand_in(monkeypatch):
    """The step parts CUDA captures (training.graphed.StepParts), run eagerly on the stand-in:
    what the graphs hold, checked without a GPU (capture itself needs one)."""
    import importlib

    from grokscope.training import graphed

    monkeypatch.setattr(importlib.import_module("torch.optim.adam"), "_get_capturable_supported_devices",
                        lambda supports_xla=True: ["cuda", DEVICE])
    monkeypatch.setattr(graphed, "step_parts_for",
                        lambda stepper: graphed.StepParts(stepper)
                        if stepper.device == DEVICE and graphed.why_not_graphed(stepper) is None else None)


def test_the_captured_steps_parts_equal_the_eager_step(tmp_path, parts_on_the_stand_in):
    config = tiny_config(train={"steps": 60})
    cpu = train(config, tmp_path / "cpu", progress=False)
    with on_stand_in() as mode:
        dev = train(config, tmp_path / "dev", progress=False, device=DEVICE)
    for column in ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr"):
        assert dev.metrics[column] == pytest.approx(cpu.metrics[column], rel=1e-5, abs=1e-6), column
    assert mode.host_reads > 0
    with on_stand_in() as mode40:
        train(tiny_config(train={"steps": 40}, checkpoint=SPARSE), tmp_path / "40", progress=False, device=DEVICE)
    with on_stand_in() as mode80:
        train(tiny_config(train={"steps": 80}, checkpoint=SPARSE), tmp_path / "80", progress=False, device=DEVICE)
    assert mode80.host_reads == mode40.host_reads  # nothing in the parts reads the device: capturable


def test_a_capturable_optimizers_state_is_stored_as_a_plain_one(parts_on_the_stand_in):
    """A resume state written by the captured step (lr in a device tensor, capturable=True)
    loads into the plain optimizer on the CPU, which then steps as the capturable one does."""
    import json

    import torch

    from grokscope.training.graphed import make_capturable
    from grokscope.training.optim import optimizer_from_tensors, optimizer_to_tensors

    torch.manual_seed(0)
    w, g = torch.randn(5), torch.randn(5)
    with on_stand_in():
        p = torch.nn.Parameter(w.clone().to(DEVICE))
        opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.5)
        make_capturable(opt, p.device)
        p.grad = g.to(DEVICE)
        opt.step()
        tensors, meta = optimizer_to_tensors(opt)
        tensors = {k: v.cpu() for k, v in tensors.items()}
        opt.step()
        after = p.detach().cpu()
    group = json.loads(meta)["param_groups"][0]
    assert group["lr"] == pytest.approx(0.1) and group["capturable"] is False
    q = torch.nn.Parameter(w.clone())
    plain = torch.optim.AdamW([q], lr=0.1, weight_decay=0.5)
    q.grad = g.clone()
    plain.step()
    optimizer_from_tensors(plain, tensors, meta)
    plain.step()
    # (float32 rounding: the capturable update computes its bias corrections on the device)
    assert q.detach().tolist() == pytest.approx(after.tolist(), rel=1e-5, abs=1e-6)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_graph_step_equals_the_eager_step(tmp_path, monkeypatch):
    import torch

    from grokscope.training import graphed

    torch.backends.cuda.matmul.allow_tf32 = False
    config = tiny_config(train={"steps": 200})
    captured = train(config, tmp_path / "graph", progress=False, device="cuda")
    monkeypatch.setattr(graphed, "step_parts_for", lambda stepper: None)
    eager = train(config, tmp_path / "eager", progress=False, device="cuda")
    for column in ("train_loss", "test_loss", "weight_norm"):
        assert captured.metrics[column] == pytest.approx(eager.metrics[column], rel=1e-4, abs=1e-6), column

"""Every built-in probe on another device gives the CPU's numbers.

On CPU-only machines the other device is the stand-in (tests/stand_in_device.py: CPU arithmetic,
CUDA's rules on mixing devices), so a probe that creates a tensor on the host and mixes it with
the model's tensors fails here as it would on every GPU checkpoint. With a GPU the same table
runs on CUDA (within float tolerance: other kernels, other rounding).
"""

import pytest
import torch
from helpers import TEACHER_STUDENT_FAST, kumar_config, tiny_config, toy
from stand_in_device import DEVICE, MixedDevices, on_stand_in

from grokscope.analysis.engine import measure_checkpoint
from grokscope.config import load_preset, with_overrides
from grokscope.experiments.landscape import landscape
from grokscope.probes.base import _BUILTINS, Probe, _load_builtins, resolve_probe
from grokscope.training import train

_load_builtins()
CHECKPOINT_PROBES = sorted(name for name, cls in _BUILTINS.items() if cls.scope == "checkpoint")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One short run of each model kind the probes read, and a landscape for the `landscape` probe."""
    tmp = tmp_path_factory.mktemp("device-runs")
    ts = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + ["train.steps=40"])
    landscape(ts, [0.5, 1.0], tmp / "landscape", jobs=1, progress=False)
    configs = {
        "transformer": tiny_config(train={"steps": 30}),
        "mlp": with_overrides(load_preset("mlp"), ["task.p=13", "model.d_embed=8", "model.hidden=16",
                                                   "train.steps=30"]),
        "committee": kumar_config("train.steps=20"),
        "toy": toy(20),
        "teacher_student": with_overrides(load_preset("teacher-student-grok"), TEACHER_STUDENT_FAST + ["train.steps=40"]),
    }
    out = {name: train(config, tmp / name, progress=False) for name, config in configs.items()}
    return out, {"landscape": {"dir": str(tmp / "landscape")},
                 "llc": {"chains": 1, "draws": 5, "burnin": 0}}


def results_on(device, run, probe, step):
    run_memo: dict = {}
    if device == "cpu":
        return measure_checkpoint(run, step, [probe], "cpu", run_memo)[probe.name]
    if device == DEVICE:
        with on_stand_in():
            return measure_checkpoint(run, step, [probe], DEVICE, run_memo)[probe.name]
    return measure_checkpoint(run, step, [probe], device, run_memo)[probe.name]


def devices() -> list[str]:
    return [DEVICE] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("name", CHECKPOINT_PROBES)
def test_probe_on_another_device_equals_the_cpu(runs, name, device):
    if name == "llc":
        pytest.importorskip("devinterp", reason="the llc probe needs devinterp (pip install 'grokscope[llc]')")
    runs, params = runs
    cls, _ = resolve_probe(name)
    measured = 0
    for kind, run in runs.items():
        probe = cls(**params.get(name, {}))
        if probe.applies_to(run) is not True:
            continue
        for step in (run.steps[0], run.steps[-1]):
            torch.manual_seed(0)  # llc's chains draw from the global generator
            cpu = results_on("cpu", run, probe, step)
            torch.manual_seed(0)
            other = results_on(device, run, probe, step)
            assert cpu["status"] == "ok", (kind, cpu.get("error"))
            assert other["status"] == "ok", f"{name} on {kind} at step {step} on {device}: {other.get('error')}"
            assert other["scalars"].keys() == cpu["scalars"].keys()
            for column, value in cpu["scalars"].items():
                got = other["scalars"][column]
                if isinstance(value, str):
                    assert got == value, (kind, column)
                else:  # the stand-in runs CPU kernels (vmap may order them otherwise); CUDA rounds otherwise
                    rel = 1e-9 if device == DEVICE else 1e-4
                    assert got == pytest.approx(value, rel=rel, abs=rel, nan_ok=True), (kind, column, value, got)
        measured += 1
    assert measured > 0, f"no test run fits the probe {name}: add one to the `runs` fixture"


class HostTensorProbe(Probe):
    """What the stand-in must catch: a tensor made on the host, mixed with the model's weights."""

    name = "host_tensor"

    def measure(self, ctx):
        W_E = ctx.model.embed.W_E
        with torch.no_grad():
            return {"x": float((torch.ones(W_E.shape[1], dtype=W_E.dtype) @ W_E.T).sum())}


class DeviceTensorProbe(HostTensorProbe):
    name = "device_tensor"

    def measure(self, ctx):
        W_E = ctx.model.embed.W_E
        with torch.no_grad():
            return {"x": float((torch.ones(W_E.shape[1], dtype=W_E.dtype, device=ctx.device) @ W_E.T).sum())}


def test_the_stand_in_catches_a_host_tensor_and_counts_host_reads(runs):
    run = runs[0]["transformer"]
    bad = results_on(DEVICE, run, HostTensorProbe(), run.steps[-1])
    assert bad["status"] == "failed" and "MixedDevices" in bad["error"] and "same device" in bad["error"]
    good = results_on(DEVICE, run, DeviceTensorProbe(), run.steps[-1])
    assert good["status"] == "ok"
    assert good["scalars"] == results_on("cpu", run, DeviceTensorProbe(), run.steps[-1])["scalars"]
    with on_stand_in() as mode:
        x = torch.arange(6.0).to(DEVICE)
        assert x.device.type == DEVICE and mode.host_reads == 0
        y = (x * 2 + torch.zeros(6, device=DEVICE)).sum()
        assert mode.host_reads == 0
        assert y.item() == 30.0 and mode.host_reads == 1
        assert x.cpu().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and mode.host_reads == 2
        assert x[torch.tensor([1, 2])].tolist() == [1.0, 2.0]  # CPU indices are allowed, as on CUDA
        with pytest.raises(MixedDevices):
            x + torch.ones(6)
        with pytest.raises(TypeError, match="cpu"):
            x.numpy()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_analyze_on_cuda_with_every_built_in_probe(runs, tmp_path):
    """What a user runs: `analyze --device cuda` with every probe that applies, against the CPU."""
    from grokscope.analysis import analyze

    runs, params = runs
    for kind, run in runs.items():
        on_cpu = analyze(run, CHECKPOINT_PROBES, out=tmp_path / f"{kind}-cpu", params=params, count=3,
                         progress=False, report=False)
        on_gpu = analyze(run, CHECKPOINT_PROBES, out=tmp_path / f"{kind}-gpu", params=params, count=3,
                         device="cuda", progress=False, report=False)
        assert on_gpu.keys() == on_cpu.keys(), kind
        for name, table in on_cpu.items():
            for column, values in table.items():
                if name == "llc" or values.dtype.kind not in "fi":
                    continue  # llc's chains draw other random numbers on the GPU
                assert on_gpu[name][column] == pytest.approx(values, rel=1e-3, abs=1e-5, nan_ok=True), (kind, name, column)

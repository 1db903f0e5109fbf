"""`--device`: auto picks CUDA when present, else CPU; CUDA where there is none is a one-line error."""

import pytest
import torch
from helpers import cli

from grokscope.devices import resolve_device
from grokscope.errors import UsageError


def test_auto_and_cpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"
    with pytest.raises(UsageError, match="choose auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line(tiny_run, tmp_path):
    r = cli("analyze", tiny_run.path, "--probe", "metrics", "--device", "cuda", "--out", tmp_path / "a")
    assert r.returncode == 2 and "this machine has no CUDA device" in r.stderr and "Traceback" not in r.stderr


def test_train_with_device_auto(tmp_path):
    r = cli("train", "--preset", "quickstart", "--set", "train.steps=3", "--set", "model.d_model=8",
            "--set", "model.d_head=2", "--set", "model.d_mlp=8", "--device", "auto", "--out", tmp_path / "r", "--quiet")
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu(tmp_path):
    """float32 on both, TF32 off: the same run on CUDA and CPU agrees to float32 rounding."""
    from helpers import tiny_config

    from grokscope.training.loop import train

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cpu = train(tiny_config(), tmp_path / "cpu", progress=False, device="cpu")
    gpu = train(tiny_config(), tmp_path / "gpu", progress=False, device="cuda")
    assert abs(cpu.metrics["train_loss"][-1] - gpu.metrics["train_loss"][-1]) < 1e-3

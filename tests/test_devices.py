"""`--device`: auto picks CUDA when present, else CPU; CUDA where there is none is a one-line error."""

import pytest
import torch
from helpers import cli, run_cli

from grokscope.devices import resolve_device
from grokscope.errors import UsageError
from grokscope.files import read_json


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


def test_sweep_and_landscape_take_device_auto(tmp_path):
    r = cli("sweep", "--preset", "liu-toy", "--grid", "optim.lr=1e-3,3e-3", "--set", "train.steps=20", "--jobs", "1",
            "--device", "auto", "--out", tmp_path / "sw", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("landscape", "--preset", "teacher-student", "--scales", "0.5,1", "--set", "train.steps=20", "--jobs", "1",
            "--device", "auto", "--out", tmp_path / "ls", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("sweep", "--preset", "liu-toy", "--device", "tpu", "--out", tmp_path / "x", "--quiet")
    assert r.returncode == 2 and "choose auto, cpu, cuda or cuda:N" in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stacked_cuda_training_matches_cpu(tmp_path):
    """The stacked trainer on CUDA against the CPU, float32 on both, TF32 off."""
    from helpers import toy

    from grokscope.training.stacked import train_many

    torch.backends.cuda.matmul.allow_tf32 = False
    configs = [toy(200, **{"optim.lr": lr}) for lr in (1e-3, 3e-3)]
    cpu = train_many(configs, [tmp_path / "c0", tmp_path / "c1"], device="cpu")
    gpu = train_many(configs, [tmp_path / "g0", tmp_path / "g1"], device="cuda")
    for a, b in zip(cpu, gpu):
        assert abs(a.metrics["train_loss"][-1] - b.metrics["train_loss"][-1]) < 1e-4 * max(1.0, a.metrics["train_loss"][-1])


KEEP_SCRIPT = """
import resource, sys, torch
from grokscope.devices import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(50):  # a training step's pattern: large tensors allocated, used and freed
    if i == 10:
        start = faults()
    xs = [torch.ones(4 << 20) for _ in range(3)]
    del xs
print((faults() - start) / 40)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults_of_each_step():
    import subprocess
    import sys

    per_step = {mode: float(subprocess.run([sys.executable, "-c", KEEP_SCRIPT, mode], capture_output=True,
                                           text=True, check=True).stdout)
                for mode in ("default", "keep")}
    # three 16 MB tensors a step (12,288 pages): glibc's default often faults most of them in
    # again every step (how often depends on the heap's layout); kept, none after the first steps
    assert per_step["keep"] < 100, per_step


FLUSH_SCRIPT = """
import sys, torch
from grokscope.devices import flush_denormals
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(1 << 22) * 2.0   # a parallel operation first: torch's worker threads start without the flag
ok = flush_denormals()
denormal = torch.ones(1 << 22, dtype=torch.int32).view(torch.float32)   # the bits: no conversion to flush
print(ok, int((denormal * 1.0).count_nonzero()))
"""


def test_flushing_denormals_reaches_every_thread_only_before_they_start(tmp_path):
    """`train.flush_denormals`: set first, every thread reads a denormal as zero; set after torch's
    worker threads started, only the calling thread does, and `flush_denormals` says so."""
    import subprocess
    import sys

    def outcome(mode):
        return subprocess.run([sys.executable, "-c", FLUSH_SCRIPT, mode], capture_output=True, text=True,
                              check=True).stdout.split()

    assert outcome("first") == ["True", "0"]
    ok, left = outcome("late")
    assert ok == "False" and 0 < int(left) < 1 << 22
    r = run_cli("train", "--preset", "quickstart", "--set", "train.steps=3", "--set", "train.flush_denormals=true",
                "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0 and "train.flush_denormals" not in r.stderr, r.stderr   # set before any torch work
    assert read_json(tmp_path / "run" / "run.json")["config"]["train"]["flush_denormals"] is True

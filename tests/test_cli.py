import json

import pytest
from helpers import cli, run_cli


def test_critical_fraction_cli(tmp_path):
    r = run_cli("critical-fraction", "4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "exact" in lines[0] and lines[1] == "n_train,fraction,probability,stderr"
    assert lines[-2].startswith("10,1.0000,1.0000") and "critical fraction" in lines[-1]
    bad = run_cli("critical-fraction", "2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def _one_line_error(result, code=2):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokscope: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_presets_lists_all():
    r = run_cli("presets")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert {"nanda", "power", "mlp", "quickstart"} <= set(names)


@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "nandaa"], "known presets"),
    (["train", "--preset", "nanda", "--set", "train.stepz=3"], "valid keys"),
    (["train", "--preset", "nanda", "--set", "train.steps=many"], "must be an integer"),
    (["train", "--preset", "nanda", "--set", "task.op=div", "--set", "task.p=100"], "not prime"),
    (["train"], "--preset"),
    (["train", "--resume", "does/not/exist"], "does not exist"),
    (["info", "does/not/exist"], "does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors(tmp_path, args, message):
    r = run_cli(*args, cwd=tmp_path)
    assert message in _one_line_error(r)
    assert not (tmp_path / "checkpoints").exists()


def test_train_info_and_refusals(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--preset", "quickstart", "--set", "train.steps=30", "--set", "task.p=13",
            "--set", "model.d_model=16", "--set", "model.d_mlp=32", "--quiet"]
    r = cli(*base, "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(str(out))
    info = cli("info", out)
    assert info.returncode == 0 and "status      complete (30 / 30 steps logged)" in info.stdout
    assert "memorized" in info.stdout and "generalized" in info.stdout
    before = (out / "metrics.csv").read_bytes()
    r = cli(*base, "--set", "train.seed=5", "--out", out)
    assert "holds a different run" in _one_line_error(r)
    assert (out / "metrics.csv").read_bytes() == before
    r = cli("train", "--resume", out)
    assert r.returncode == 0 and "already complete" in r.stderr


def test_default_out_is_named_after_preset_and_overrides(tmp_path):
    r = run_cli("train", "--preset", "quickstart", "--set", "train.steps=3", "--set", "task.p=7",
                "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "checkpoints" / "quickstart_steps3_p7"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"

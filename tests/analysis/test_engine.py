"""The analysis engine: the output contract, caching, failures, parallelism."""

import json

import numpy as np
import pytest
from helpers import run_cli, tiny_config

from grokscope.analysis import analyze
from grokscope.probes.base import Probe
from grokscope.probes.fourier import FourierProbe
from grokscope.tables import read_table
from grokscope.training import train


def test_default_probes_write_the_contract(tiny_run, tmp_path):
    out = tmp_path / "a"
    tables = analyze(tiny_run, out=out, every=20, progress=False)
    assert set(tables) == {"metrics", "weights", "fourier", "progress"}
    steps = [0, 20, 40, 60, 80, 100, 120]
    for name, cols in {"metrics": ["train_loss", "train_acc", "test_loss", "test_acc"],
                       "weights": ["weight_norm", "sum_sq_weights", "norm.embed.W_E"],
                       "fourier": ["key_frequencies", "gini_embed", "gini_neuron_logit", "key_energy_share",
                                   "neuron_single_freq_share", "embed_k1"],
                       "progress": ["restricted_loss", "excluded_loss"]}.items():
        table = read_table(out / f"{name}.csv")
        assert list(table)[0] == "step" and table["step"].tolist() == steps
        assert set(cols) <= set(table), name
        for ext in ("png", "pdf", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
        drawn = read_table(out / "figures" / f"{name}.csv")  # the numbers the figure draws
        assert list(drawn) == ["panel", "title", "series", "column", "x", "y"] and set(drawn["x"]) <= set(steps)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {n: e["status"] for n, e in manifest["probes"].items()} == dict.fromkeys(
        ["metrics", "weights", "fourier", "progress", "phases"], "ok")
    assert manifest["checkpoints"] == steps
    assert "cos before sin" in manifest["probes"]["fourier"]["notes"]
    with np.load(out / "fourier.npz") as npz:
        assert npz["embed_freq_norms/step_00000120"].shape == (7,)
    phases = json.loads((out / "phases.json").read_text())
    assert phases["memorization_step"] == tiny_run.memorization_step
    report = (out / "report.html").read_text()
    assert "src='figures/training.png'" in report and "Summary" in report
    assert f"memorized its training set at step {tiny_run.memorization_step:,}" in (out / "report.md").read_text()


def test_metrics_probe_matches_the_trainer(tiny_run, tmp_path):
    tables = analyze(tiny_run, ["metrics"], out=tmp_path / "a", steps="100:120", progress=False, report=False)
    logged = tiny_run.metrics
    for i, step in enumerate(tables["metrics"]["step"]):
        for col in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert tables["metrics"][col][i] == pytest.approx(logged[col][step], rel=1e-5, abs=1e-7)


def test_rerun_uses_the_cache_and_version_bump_invalidates(tiny_run, tmp_path):
    out = tmp_path / "a"
    analyze(tiny_run, ["fourier"], out=out, every=40, progress=False, report=False)
    analyze(tiny_run, ["fourier"], out=out, every=40, progress=False, report=False)
    entry = json.loads((out / "manifest.json").read_text())["probes"]["fourier"]
    assert entry["n_cached"] == entry["n_ok"] == 4

    class FourierV2(FourierProbe):
        version = str(int(FourierProbe.version) + 1)

    analyze(tiny_run, [FourierV2()], out=out, every=40, progress=False, report=False)
    assert json.loads((out / "manifest.json").read_text())["probes"]["fourier"]["n_cached"] == 0
    analyze(tiny_run, ["fourier"], out=out, every=40, params={"fourier": {"per_checkpoint_keys": True}},
            progress=False, report=False)
    assert json.loads((out / "manifest.json").read_text())["probes"]["fourier"]["n_cached"] == 0


def test_results_that_read_other_checkpoints_follow_them(tiny_run, copy_run, tmp_path):
    """Analyzed while it trained (its final checkpoint then step 60) and again when done, a run's
    tables equal a fresh analysis byte for byte: fourier's and progress's key frequencies come from
    the final checkpoint, cka compares with it; a result is reused only where what it read is the
    same (before `run_inputs` the step-60 keys stayed in the cache and the tables differed)."""
    growing = copy_run(tiny_run)
    for step in growing.steps:
        if step > 60:
            growing.checkpoint_path(step).unlink()
    probes = ["fourier", "progress", "cka"]
    live, fresh = tmp_path / "live", tmp_path / "fresh"
    early = analyze(growing, probes, out=live, every=20, progress=False, report=False)
    analyze(tiny_run, probes, out=live, every=20, progress=False, report=False)
    done = analyze(tiny_run, probes, out=fresh, every=20, progress=False, report=False)
    for name in probes:
        assert (live / f"{name}.csv").read_bytes() == (fresh / f"{name}.csv").read_bytes(), name
    assert (live / "fourier.npz").read_bytes() == (fresh / "fourier.npz").read_bytes()
    cached = {n: e["n_cached"] for n, e in json.loads((live / "manifest.json").read_text())["probes"].items()
              if n in probes}
    same_keys = early["fourier"]["key_frequencies"][0] == done["fourier"]["key_frequencies"][0]
    assert cached == {"fourier": 4 if same_keys else 0, "progress": 4 if same_keys else 0, "cka": 0}


class Flaky(Probe):
    name = "flaky"
    version = "1"

    def measure(self, ctx):
        if ctx.step == 40:
            raise RuntimeError("boom at 40")
        return {"value": float(ctx.step)}


def test_a_failing_probe_does_not_stop_the_others(tiny_run, tmp_path):
    out = tmp_path / "a"
    tables = analyze(tiny_run, [Flaky(), "weights"], out=out, every=20, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())["probes"]
    assert manifest["flaky"]["status"] == "failed" and "boom at 40" in manifest["flaky"]["reason"]
    assert manifest["flaky"]["failures"][0]["step"] == 40
    assert 40 not in tables["flaky"]["step"] and len(tables["flaky"]["step"]) == 6
    assert manifest["weights"]["status"] == "ok" and len(tables["weights"]["step"]) == 7


def test_truncated_checkpoint_is_reported_and_the_rest_analyzed(copy_run, tiny_run, tmp_path):
    run = copy_run(tiny_run)
    path = run.checkpoint_path(60)
    path.write_bytes(path.read_bytes()[:1000])
    r = run_cli("analyze", run.path, "--probe", "weights", "--every", "20", "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    entry = json.loads((tmp_path / "a" / "manifest.json").read_text())["probes"]["weights"]
    assert entry["status"] == "failed" and "truncated" in entry["reason"]
    assert read_table(tmp_path / "a" / "weights.csv")["step"].tolist() == [0, 20, 40, 80, 100, 120]


def test_parallel_equals_serial(tiny_run, tmp_path):
    serial = analyze(tiny_run, ["metrics", "fourier"], out=tmp_path / "s", every=30, progress=False, report=False)
    parallel = analyze(tiny_run, ["metrics", "fourier"], out=tmp_path / "p", every=30, jobs=2,
                       progress=False, report=False)
    for name in serial:
        for col in serial[name]:
            a, b = serial[name][col], parallel[name][col]
            if a.dtype == object:
                assert a.tolist() == b.tolist()
            else:
                np.testing.assert_allclose(a, b, rtol=1e-6)


def test_probe_that_does_not_apply_is_skipped(tmp_path):
    run = train(tiny_config(task={"name": "permutation", "n": 3, "frac_train": 0.5}, train={"steps": 10}),
                tmp_path / "s3", progress=False)
    analyze(run, out=tmp_path / "a", progress=False)
    entries = json.loads((tmp_path / "a" / "manifest.json").read_text())["probes"]
    assert entries["fourier"]["status"] == "skipped" and "Z_p" in entries["fourier"]["reason"]
    assert entries["progress"]["status"] == "skipped"
    assert entries["metrics"]["status"] == "ok"
    assert "Skipped: needs a task over Z_p" in (tmp_path / "a" / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["analyze", "no/such/run"], "does not exist"),
    (["analyze", "{run}", "--probe", "fourierr"], "known probes: cka, fourier, kumar_stats"),
    (["analyze", "{run}", "--probe", "nofile.py:X"], "does not exist"),
    (["analyze", "{run}", "--param", "fourier.nonsense=1", "--probe", "fourier"], "has no parameter 'nonsense'"),
    (["report", "no/such/run"], "does not exist"),
])
def test_analyze_usage_errors(tiny_run, tmp_path, args, message):
    args = [a.replace("{run}", str(tiny_run.path)) for a in args]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr

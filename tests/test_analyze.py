import json
import shutil

import numpy as np
import pytest

import grokscope
from conftest import ROOT, run_cli, tiny_config
from grokscope.analysis import analyze, select_steps
from grokscope.errors import UsageError
from grokscope.probes.base import Probe
from grokscope.probes.fourier import FourierProbe
from grokscope.measures.transitions import locate_phases
from grokscope.tables import read_table
from grokscope.training import train

EXAMPLE = ROOT / "docs" / "examples" / "attention_entropy.py"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    return train(tiny_config(train={"steps": 120}), path, progress=False)


def _copy(run, tmp_path):
    dst = tmp_path / run.name
    shutil.copytree(run.path, dst)
    return grokscope.load_run(dst)


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
            assert (out / f"{name}.{ext}").stat().st_size > 1000
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
    assert "data:image/png;base64" in report and "Summary" in report
    assert "Train accuracy passed 99%" in (out / "report.md").read_text() or \
        "Test accuracy passed 99%" in (out / "report.md").read_text()


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
        version = "2"

    analyze(tiny_run, [FourierV2()], out=out, every=40, progress=False, report=False)
    assert json.loads((out / "manifest.json").read_text())["probes"]["fourier"]["n_cached"] == 0
    analyze(tiny_run, ["fourier"], out=out, every=40, params={"fourier": {"per_checkpoint_keys": True}},
            progress=False, report=False)
    assert json.loads((out / "manifest.json").read_text())["probes"]["fourier"]["n_cached"] == 0


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


def test_truncated_checkpoint_is_reported_and_the_rest_analyzed(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    path = run.checkpoint_path(60)
    path.write_bytes(path.read_bytes()[:1000])
    r = run_cli("analyze", run.path, "--probe", "weights", "--every", "20", "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    entry = json.loads((tmp_path / "a" / "manifest.json").read_text())["probes"]["weights"]
    assert entry["status"] == "failed" and "truncated" in entry["reason"]
    assert read_table(tmp_path / "a" / "weights.csv")["step"].tolist() == [0, 20, 40, 80, 100, 120]


def test_probe_from_a_file_the_docs_example(tiny_run, tmp_path):
    r = run_cli("analyze", tiny_run.path, "--probe", f"{EXAMPLE}:AttentionEntropy,weights",
                "--every", "60", "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    table = read_table(tmp_path / "a" / "attention_entropy.csv")
    assert table["step"].tolist() == [0, 60, 120]
    # three keys: entropy is between 0 and log 3
    assert ((table["entropy_mean"] > 0) & (table["entropy_mean"] < np.log(3) + 1e-9)).all()
    assert (tmp_path / "a" / "attention_entropy.png").exists()


def test_probe_from_a_module_and_from_an_entry_point(tiny_run, tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "myprobes").mkdir(parents=True)
    (pkg / "myprobes" / "__init__.py").write_text(EXAMPLE.read_text())
    dist = pkg / "myprobes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myprobes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[grokscope.probes]\nattention_entropy = myprobes:AttentionEntropy\n")
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", str(pkg))

    tables = analyze(tiny_run, ["myprobes:AttentionEntropy"], out=tmp_path / "m", every=60, progress=False, report=False)
    assert "entropy_mean" in tables["attention_entropy"]
    tables = analyze(tiny_run, ["attention_entropy"], out=tmp_path / "e", every=60, progress=False, report=False)
    assert "entropy_mean" in tables["attention_entropy"]
    listing = run_cli("probes")
    line = next(l for l in listing.stdout.splitlines() if l.startswith("attention_entropy"))
    assert "entry point myprobes:AttentionEntropy" in line


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


def test_report_is_deterministic(tiny_run, tmp_path):
    from grokscope.report.document import build_report

    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=40, progress=False)
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    build_report(out, tiny_run, force=True)
    second = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    assert first == second


@pytest.mark.parametrize("kw, expected", [
    ({}, [0, 1, 2, 5, 10, 50, 100, 200]),
    ({"every": 50}, [0, 50, 100, 200]),
    ({"steps": "2:60"}, [2, 5, 10, 50]),
    ({"steps": ":5"}, [0, 1, 2, 5]),
    ({"count": 3}, [0, 10, 200]),
])
def test_select_steps(kw, expected):
    assert select_steps([0, 1, 2, 5, 10, 50, 100, 200], **kw) == expected


def test_select_steps_errors():
    with pytest.raises(UsageError, match="no checkpoint matches"):
        select_steps([0, 10], steps="20:30")
    with pytest.raises(UsageError, match="A:B"):
        select_steps([0, 10], steps="a:b")


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


def test_compare_runs(tiny_run, tmp_path):
    other = train(tiny_config(train={"steps": 120, "seed": 1}), tmp_path / "seed1", progress=False)
    r = run_cli("compare", tiny_run.path, other.path, "--out", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    table = read_table(tmp_path / "c" / "compare.csv")
    assert table["run"].tolist() == ["tiny", "seed1"]
    assert table["memorization_step"][0] == tiny_run.memorization_step
    assert (tmp_path / "c" / "compare.svg").exists() and "| tiny |" in (tmp_path / "c" / "compare.md").read_text()


def test_phases_on_synthetic_curves():
    steps = np.arange(0, 1001, 10)
    train_acc = np.clip(steps / 100, 0, 1)
    test_acc = np.where(steps < 600, 0.1, 1.0)
    test_loss = np.where(steps < 200, 5 + steps / 100, np.where(steps < 500, 7.0, np.where(steps < 700, 0.5, 0.001)))
    ph = locate_phases({"step": steps, "train_acc": train_acc, "test_acc": test_acc,
                        "test_loss": test_loss, "train_loss": np.zeros_like(test_loss)})
    assert ph["memorization_step"] == 100 and ph["generalization_step"] == 600 and ph["delay"] == 500
    assert [(p["name"], p["start"], p["end"]) for p in ph["phases"]] == [
        ("memorization", 0, 200), ("circuit formation", 200, 500), ("cleanup", 500, 700)]


def test_report_command_rebuilds_from_tables(tiny_run, tmp_path):
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=60, progress=False)
    (out / "report.html").unlink()
    (out / "weights.png").unlink()
    r = run_cli("report", out)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists() and (out / "weights.png").exists()


def test_duplicate_builtin_name_is_refused():
    from grokscope.probes.base import register_probe

    class Again(Probe):
        name = "fourier"

    with pytest.raises(ValueError, match="defined twice: grokscope.probes.fourier.FourierProbe and"):
        register_probe(Again)


def test_two_user_probes_with_one_name_are_refused(tiny_run, tmp_path):
    class A(Flaky):
        pass

    with pytest.raises(UsageError, match="probe name 'flaky' is defined twice"):
        analyze(tiny_run, [Flaky(), A()], out=tmp_path / "a", progress=False)

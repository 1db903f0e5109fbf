"""The `llc` probe on real runs, `grokscope llc-calibrate`, and the report's LLC figure and claim."""

import json

import numpy as np
import pytest
from helpers import cli

pytest.importorskip("devinterp", reason="the llc extra is not installed (pip install -e .[llc])")

from grokscope.analysis.engine import analyze  # noqa: E402
from grokscope.tables import read_manifest, read_table  # noqa: E402
from grokscope.training.loop import train  # noqa: E402

FAST = {"chains": 2, "draws": 30, "burnin": 10, "epsilon": 1e-4}


def test_llc_probe_writes_mean_std_chains_settings_and_traces(tiny_run, tmp_path):
    out = tmp_path / "a"
    tables = analyze(tiny_run, ["metrics", "llc", "phases"], out=out, count=4, params={"llc": FAST}, progress=False)
    t = tables["llc"]
    assert {"llc_mean", "llc_std", "llc_chain0", "llc_chain1", "llc_init_loss", "llc_nbeta", "llc_warnings"} <= set(t)
    assert t["llc_epsilon"][0] == 1e-4 and t["llc_chains"][0] == 2 and t["llc_gamma"][0] == 100  # the settings used
    assert np.isfinite(t["llc_mean"]).all()
    chains = np.stack([t["llc_chain0"], t["llc_chain1"]])
    assert np.allclose(chains.mean(0), t["llc_mean"]) and np.allclose(chains.std(0, ddof=1), t["llc_std"])
    entry = read_manifest(out)["probes"]["llc"]
    assert entry["params"]["chains"] == 2 and entry["params"]["epsilon"] == 1e-4  # the settings used
    arrays = np.load(out / "llc.npz")
    assert arrays[f"loss_trace/step_{int(t['step'][-1]):08d}"].shape == (2, 30)
    assert (out / "figures" / "llc.png").exists()
    drawn = read_table(out / "figures" / "llc.csv")
    assert "λ̂ (mean ± std over chains): std" in set(drawn["series"])  # the band's numbers are there too


def test_llc_probe_on_a_regression_run(tmp_path):
    from helpers import TEACHER_STUDENT_FAST

    from grokscope.config import load_preset, with_overrides

    run = train(with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + ["train.steps=60"]),
                tmp_path / "ts", progress=False)
    tables = analyze(run, ["llc"], out=tmp_path / "a", count=3, params={"llc": FAST}, progress=False)
    assert np.isfinite(tables["llc"]["llc_mean"]).all()


def test_bad_settings_skip_the_probe_in_one_line(tiny_run, tmp_path):
    analyze(tiny_run, ["llc"], out=tmp_path / "a", count=2, params={"llc": {"chains": 0}}, progress=False)
    entry = read_manifest(tmp_path / "a")["probes"]["llc"]
    assert entry["status"] == "skipped" and "chains and draws must be >= 1" in entry["reason"]


def test_calibrate_command_sweeps_and_recommends(tiny_run, tmp_path):
    out = tmp_path / "cal"
    r = cli("llc-calibrate", tiny_run.path, "--epsilons", "1e-5,1e-4,1e-3", "--nbetas", "2,10", "--chains", "2",
            "--draws", "40", "--burnin", "10", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = read_table(out / "calibration.csv")
    assert len(rows["epsilon"]) == 6 and set(rows["nbeta"]) == {2.0, 10.0}
    rec = json.loads((out / "recommendation.json").read_text())
    assert rec["step"] == tiny_run.steps[-1] and rec["why"]
    # 40 draws after 10 of burn-in are too few for any trace to flatten on the tiny run: the command
    # says so and why, rather than recommending a setting it could not check (the positive case,
    # a recommendation and how to use it, is the rule's test below and the CLI test that follows)
    assert rec["epsilon"] is None and "no setting was clean" in rec["why"]
    assert f"no recommendation: {rec['why']}" in r.stdout and "recommended:" not in r.stdout
    for ext in ("png", "pdf", "svg", "csv"):
        assert (out / "figures" / f"llc_calibration.{ext}").exists()
    assert len(read_table(out / "traces.csv")["draw"]) == 40


def test_calibrate_refuses_bad_input_in_one_line(tiny_run, tmp_path):
    for args, words in ((["--step", "7777"], "no checkpoint at step 7,777"),
                        (["--epsilons", "a,b"], "--epsilons expects comma-separated numbers"),
                        (["--nbetas", "-1"], "--nbetas expects positive numbers"),
                        (["--chains", "1"], "--chains must be at least 2")):
        r = cli("llc-calibrate", tiny_run.path, "--out", tmp_path / "x", *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_calibrate_prints_a_recommendation_and_how_to_use_it(tiny_run, tmp_path, monkeypatch, capsys):
    """The command's other branch, with the calibration's result fixed (its sampling is tested above)."""
    import grokscope.experiments.llc_calibration as cal
    from grokscope.cli import main

    rec = {"epsilon": 3e-4, "nbeta": 2.0, "llc_mean": 10.5, "step": 80, "why": "agrees within 25%"}
    monkeypatch.setattr(cal, "calibrate", lambda *a, **k: rec)
    assert main(["llc-calibrate", str(tiny_run.path), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "recommended: epsilon=0.0003 nbeta=2 (λ̂ = 10.5 at step 80): agrees within 25%" in out
    assert f"use: grokscope analyze {tiny_run.path} --probe llc --param llc.epsilon=0.0003 --param llc.nbeta=2" in out


def test_recommendation_rule():
    from grokscope.experiments.llc_calibration import mark_stable, recommend

    def row(e, b, m, clean=True):
        return {"epsilon": e, "nbeta": b, "llc_mean": m, "llc_std": 0.1, "warnings": "" if clean else "x",
                "clean": clean}

    rows = [row(1e-4, 2, 10.0), row(3e-4, 2, 10.5), row(1e-3, 2, 16.0), row(3e-3, 2, 40.0, clean=False)]
    mark_stable(rows)
    assert [r["stable"] for r in rows] == [False, True, False, False]
    rec = recommend(rows, 2.0)
    assert rec["epsilon"] == 3e-4 and "agrees within 25%" in rec["why"]
    none = [row(1e-4, 2, 1.0, clean=False)]
    mark_stable(none)
    assert recommend(none, 2.0)["epsilon"] is None


@pytest.mark.slow
def test_llc_peaks_at_the_end_of_memorization_and_falls_with_the_test_loss(tmp_path):
    """The correctness check on grokking (devinterp's published behaviour): on `mlp-small`, a run
    that memorizes near step 120 and generalizes near 2,140, the LLC rises while the model
    memorizes, peaks near the end of memorization and falls as the test loss falls. About 80 s:
    slow, and run by CI's second pass."""
    from scipy.stats import spearmanr

    from grokscope.config import load_preset

    run = train(load_preset("mlp-small"), tmp_path / "run", progress=False)
    mem, gen = run.memorization_step, run.generalization_step
    assert mem is not None and gen is not None and gen > 5 * mem  # it groks
    tables = analyze(run, ["llc", "phases"], out=tmp_path / "a", every=80, jobs=2,
                     params={"llc": {"chains": 2}}, progress=False)
    t = tables["llc"]
    assert all(str(w) in ("", "nan") for w in t["llc_warnings"])  # the diagnostics are clean
    steps, llc = t["step"], t["llc_mean"]
    peak = int(np.argmax(llc))
    assert 0 < steps[peak] <= 4 * mem, (steps[peak], mem)        # near the end of memorization
    assert llc[peak] > 5 * llc[0] and llc[peak] > 5 * llc[-1]     # a rise and a fall
    test_loss = np.interp(steps[peak:], run.metrics["step"], run.metrics["test_loss"])
    rho = spearmanr(llc[peak:], test_loss).statistic
    assert rho > 0.8, rho                                         # the fall tracks the test loss
    summary = (tmp_path / "a" / "report.md").read_text()
    assert "the local learning coefficient rose from" in summary and "tracking the test loss" in summary


def test_without_devinterp_the_probe_skips_and_the_command_says_how_to_install(tiny_run, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "devinterp.slt.sampler", None)  # import fails as if not installed
    analyze(tiny_run, ["metrics", "llc"], out=tmp_path / "a", count=2, progress=False)
    entry = read_manifest(tmp_path / "a")["probes"]["llc"]
    assert entry["status"] == "skipped" and "pip install 'grokscope[llc]'" in entry["reason"]
    r = cli("llc-calibrate", tiny_run.path, "--out", tmp_path / "c")
    assert r.returncode == 2 and "pip install 'grokscope[llc]'" in r.stderr and "Traceback" not in r.stderr

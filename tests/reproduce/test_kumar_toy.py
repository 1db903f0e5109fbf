"""`grokscope reproduce kumar-toy`: Kumar et al. 2024's polynomial toy (Fig. 1, Fig. 3a) and the
NTK probe settings it needs: every point of each split, not 128."""

import json

import numpy as np
import pytest
from helpers import cli

from grokscope.reproduce import RunData
from grokscope.reproduce.kumar import halving_gap, toy_checks


def test_halving_gap_reads_the_first_step_at_half_the_start():
    m = {"step": np.arange(5) * 10, "train_loss": np.array([1.0, 0.8, 0.5, 0.2, 0.1]),
         "test_loss": np.array([2.0, 2.2, 1.5, 1.0, 0.4])}
    assert halving_gap(m) == (20, 30)


def _run(name, coords, test_bump=1.2, gap=3500, align=(0.008, 0.013), lazy=0.66, train_tau=2500, test_tau=9000,
         norm_end=1400):
    step = np.arange(0, 100001, 10)
    train = 0.89 * np.where(step < 250, 1, 0.8) * np.exp(-np.maximum(step - 2000, 0) / train_tau) + 1e-4
    test = 0.89 * (1 + (test_bump - 1) * np.exp(-((step - 500) / 300) ** 2)) * np.exp(
        -np.maximum(step - 2000 - gap, 0) / test_tau) + 0.03
    metrics = {"step": step, "train_loss": train, "test_loss": test, "weight_norm": np.linspace(200, norm_end, len(step))}
    tables = {"ntk_alignment": {"step": np.array([0, 100000]), "alignment_test": np.array(align),
                                "alignment_train": np.array(align), "kernel_regression_test_loss": np.array([lazy, lazy]),
                                "n_train_points": np.array([550, 550]), "n_test_points": np.array([1000, 1000])}}
    return RunData(name, coords, 0, "complete", metrics, {}, tables)


def _gap_run(alpha, delay):
    """A run whose train loss halves at step 1,000 and test loss `delay` steps later."""
    step = np.arange(0, 100001, 10)
    return RunData(f"a{alpha}", {"model.alpha": alpha}, 0, "complete",
                   {"step": step, "train_loss": np.where(step < 1000, 1.0, 0.1),
                    "test_loss": np.where(step < 1000 + delay, 1.0, 0.1)}, {}, {})


def test_every_judged_check_passes_on_the_papers_numbers_and_fails_off_them():
    good = {"alpha": [_gap_run(0.25, 900), _run("a1", {"model.alpha": 1.0}, gap=0), _gap_run(4.0, 15000)]}
    checks = toy_checks("full", good)
    assert all(c.ok for c in checks), [(c.quantity, c.ours) for c in checks if not c.ok]
    off = _run("a1", {"model.alpha": 1.0}, test_bump=1.0, gap=0, align=(0.05, 0.04), lazy=0.66 * 1.6,
               train_tau=60000, test_tau=10 ** 6, norm_end=220)
    bad = toy_checks("full", {"alpha": [_gap_run(0.25, 15000), off, _gap_run(4.0, 900)]})
    assert [c.quantity for c in bad if c.ok is False] == [c.quantity for c in checks] and len(checks) == 10


def test_the_checks_pass_on_the_papers_numbers_and_fail_on_the_old_probe_defaults():
    one = _run("a1", {"model.alpha": 1.0})
    good = {"alpha": [_run("a.25", {"model.alpha": 0.25}, gap=900), one, _run("a4", {"model.alpha": 4.0}, gap=15000)]}
    verdicts = {c.quantity: c.ok for c in toy_checks("full", good)}
    lazy = next(k for k in verdicts if k.startswith("lazy baseline"))
    assert verdicts[lazy] and verdicts["test NTK alignment at initialization (1000 test points)"]
    # what 128 points gave: alignment several times the paper's, a lazy baseline about 7x off
    bad = {"alpha": [good["alpha"][0], _run("a1", {"model.alpha": 1.0}, align=(0.05, 0.06), lazy=0.66 * 7),
                     good["alpha"][2]]}
    verdicts = {c.quantity: c.ok for c in toy_checks("full", bad)}
    assert not verdicts[lazy] and not verdicts["test NTK alignment at initialization (1000 test points)"]
    # a delay that shrinks with alpha fails
    shrinking = {"alpha": [_run("a.25", {"model.alpha": 0.25}, gap=9000), one,
                           _run("a4", {"model.alpha": 4.0}, gap=900)]}
    assert not toy_checks("full", shrinking)[-1].ok


@pytest.mark.slow   # a whole reproduction or fresh processes: run by .ci/run after the README command
def test_quick_scale_shows_the_lazy_phase_the_kernel_baseline_and_the_alpha_delay(tmp_path):
    r = cli("reproduce", "kumar-toy", "--out", tmp_path / "kt", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "kt" / "results.json").read_text())
    judged = [c for c in result["checks"] if c["ok"] is not None]
    assert all(c["ok"] for c in judged), result["checks"]
    names = " ".join(c["quantity"] for c in judged)
    assert "lazy phase" in names and "lazy baseline" in names and "delay" in names
    tables = list((tmp_path / "kt" / "alpha" / "analyses").glob("*/ntk_alignment.csv"))
    assert len(tables) == 1 and "alpha1_" in str(tables[0])   # probes on alpha = 1 only
    assert ",550.0,1000.0" in tables[0].read_text() or ",550,1000" in tables[0].read_text()  # every point


@pytest.mark.slow
def test_full_scale_matches_the_paper(tmp_path):
    r = cli("reproduce", "kumar-toy", "--scale", "full", "--out", tmp_path / "kt", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "kt" / "results.json").read_text())
    assert all(c["ok"] for c in result["checks"] if c["ok"] is not None), result["checks"]

"""`grokscope reproduce nanda`: Nanda et al. 2023's mainline dynamics against the published runs."""

import json

import numpy as np
import pytest
from helpers import cli

from grokscope.reproduce import RunData
from grokscope.reproduce.nanda import checks


def mainline(mem=270, peak=30.0, peak_at=1400, grok=7600, fall=700, restricted_first=True, keys="14 35 41 42 52",
             sparse=True, excluded_rise=True, norm_falls=True):
    step = np.arange(0, 20001, 10)
    train = np.exp(-step / (mem / np.log(100)))
    rise = peak * np.exp(-((step - peak_at) / 600.0) ** 2)
    test = np.where(step < grok, np.maximum(rise, 1.5), np.exp(-(step - grok) / (fall / np.log(100))))
    norm = np.where(step < peak_at, 40 + step / peak_at * 10, 50 - 25 * (step - peak_at) / 18600)
    norm = norm if norm_falls else 40 + step / 1000
    metrics = {"step": step, "train_loss": train, "test_loss": test, "train_acc": (train < 0.1).astype(float),
               "test_acc": (test < 0.1).astype(float), "weight_norm": norm}
    ps = np.linspace(0, 20000, 41).astype(int)
    restricted = np.interp(ps, step, test) * (0.3 if restricted_first else 3.0)
    excluded = np.where(ps <= 1400, 0.01, np.where(ps <= grok, 5.0, 10.0)) if excluded_rise else np.full(len(ps), 0.01)
    gini = (np.linspace(0.1, 0.7, len(ps)), np.linspace(0.2, 0.8, len(ps))) if sparse else \
        (np.full(len(ps), 0.1), np.full(len(ps), 0.2))
    tables = {"fourier": {"step": ps, "key_frequencies": np.array([keys] * len(ps), dtype=object),
                          "gini_embed": gini[0], "gini_neuron_logit": gini[1]},
              "progress": {"step": ps, "restricted_loss": restricted, "excluded_loss": excluded,
                           "test_loss": np.interp(ps, step, test), "train_loss": np.interp(ps, step, train)}}
    return RunData("nanda", {}, 0, "complete", metrics, {}, tables)


def half(grok=740):
    step = np.arange(0, 3001, 10)
    return RunData("half", {"task.frac_train": 0.5}, 0, "complete",
                   {"step": step, "test_loss": np.where(step < grok, 5.0, 0.005)}, {}, {})


def test_the_checks_pass_on_the_published_dynamics_and_fail_off_them():
    good = checks("full", {"mainline": [mainline()], "fraction": [half()]})
    assert all(c.ok is not False for c in good), [(c.quantity, c.ours) for c in good if c.ok is False]
    bad = checks("full", {"mainline": [mainline(mem=3000, peak=3.0, grok=60000, restricted_first=False, keys="1",
                                                sparse=False, excluded_rise=False, norm_falls=False)],
                          "fraction": [half(grok=6000)]})
    # every judged check fails off the published dynamics (none of them holds by construction)
    judged = [c.quantity for c in good if c.ok is not None]
    assert [c.quantity for c in bad if c.ok is False] == judged and len(judged) == 10
    assert [c.quantity for c in good if c.ok is None] == ["phases: memorization / circuit formation / cleanup start"]


@pytest.mark.slow   # a whole reproduction or fresh processes: run by .ci/run after the README command
def test_quick_scale_memorizes_when_the_published_runs_do(tmp_path):
    r = cli("reproduce", "nanda", "--out", tmp_path / "n", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "n" / "results.json").read_text())
    (check,) = result["checks"]
    assert check["ok"] is True and 135 <= int(check["ours"].replace(",", "")) <= 540, check


@pytest.mark.slow
def test_full_scale_matches_the_published_runs(tmp_path):
    r = cli("reproduce", "nanda", "--scale", "full", "--out", tmp_path / "n", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "n" / "results.json").read_text())
    assert all(c["ok"] is not False for c in result["checks"]), result["checks"]

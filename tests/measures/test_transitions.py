"""When a run memorized and generalized, and its phases (measures.transitions)."""

import numpy as np
import pytest
from helpers import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st

from grokscope.config import load_preset, with_overrides
from grokscope.measures.transitions import classify_phase, locate_phases, transition_steps
from grokscope.training import train


def test_classify_phase_on_synthetic_curves():
    steps = np.arange(0, 5000, 10)
    ramp = lambda at: (steps >= at).astype(float)
    assert classify_phase(steps, ramp(100), ramp(500))[0] == "comprehension"
    phase, t_train, t_test = classify_phase(steps, ramp(100), ramp(3000))
    assert (phase, t_train, t_test) == ("grokking", 100, 3000)
    assert classify_phase(steps, ramp(100), ramp(3000), lag=5000)[0] == "comprehension"
    assert classify_phase(steps, ramp(100), 0.5 * ramp(0))[0] == "memorization"
    assert classify_phase(steps, 0.5 * ramp(0), 0.2 * ramp(0))[0] == "confusion"
    # 9 of 10 stored as float32 is 0.8999999762: still "at least 90%"
    assert classify_phase(steps, ramp(0), np.full(len(steps), np.float32(0.9)))[0] == "comprehension"
    assert classify_phase(steps, ramp(100), 0.85 * ramp(0), threshold=0.8)[0] == "comprehension"


# ------------------------------------------------------------------ vectorized training


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


# ------------------------------------------------------------------ phases: ordered, disjoint, consistent

def assert_phases_consistent(ph: dict, steps) -> None:
    """Ordered, non-overlapping, inside the logged steps, and consistent with the transition steps."""
    phases = ph["phases"]
    names = [p["name"] for p in phases]
    assert names == [n for n in ("memorization", "circuit formation", "cleanup") if n in names]
    for p in phases:
        assert p["start"] < p["end"], p
        assert steps[0] <= p["start"] and p["end"] <= steps[-1], p
    for a, b in zip(phases, phases[1:]):
        assert a["end"] == b["start"], (a, b)     # disjoint and contiguous
    mem, gen = ph["memorization_step"], ph["generalization_step"]
    if mem is None:
        assert not phases
        return
    if phases:
        assert phases[0]["start"] == steps[0]
        first_end = phases[0]["end"] if phases[0]["name"] == "memorization" else phases[0]["start"]
        assert first_end >= mem                   # memorization ends once the run has memorized
    if gen is not None and phases:
        assert phases[-1]["end"] >= gen           # the phases reach the generalization step
        circuit = [p for p in phases if p["name"] == "circuit formation"]
        assert not circuit or circuit[0]["end"] <= gen


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.lists(st.floats(0, 1), min_size=1, max_size=40),
       st.lists(st.floats(1e-4, 20), min_size=1, max_size=40), st.booleans())
def test_phases_are_ordered_and_disjoint_on_any_curves(train_acc, test_acc, test_loss, cross_entropy):
    n = min(len(train_acc), len(test_acc), len(test_loss))
    steps = np.arange(n) * 10
    metrics = {"step": steps, "train_acc": np.maximum.accumulate(train_acc[:n]), "test_acc": np.array(test_acc[:n]),
               "train_loss": np.ones(n), "test_loss": np.array(test_loss[:n])}
    assert_phases_consistent(locate_phases(metrics, cross_entropy=cross_entropy), steps)


def test_phases_when_it_generalizes_before_it_memorizes():
    """Liu et al.'s toy passes 99% test accuracy before 99% train accuracy: no overlap, no
    circuit-formation phase (the liu-toy report once read "circuit formation 0–5,000; cleanup 0–3,706")."""
    steps = np.arange(0, 5001, 10)
    metrics = {"step": steps, "train_acc": (steps >= 2460).astype(float), "test_acc": (steps >= 2410).astype(float),
               "train_loss": np.ones(len(steps)), "test_loss": 0.5 * np.exp(-steps / 1000)}
    ph = locate_phases(metrics, cross_entropy=False)
    assert [(p["name"], p["start"], p["end"]) for p in ph["phases"]] == [
        ("memorization", 0, 2460), ("cleanup", 2460, 5000)]
    assert "no circuit-formation phase" in ph["note"]


@pytest.mark.parametrize("kind", ["transformer", "mlp", "toy", "mnist"])
def test_phases_of_short_runs_of_each_model_family(kind, tmp_path):
    sets = {
        "transformer": ("quickstart", ["task.p=17", "model.d_model=32", "model.d_mlp=64", "train.steps=400",
                                       "task.frac_train=0.5", "optim.lr=1e-2"]),
        "mlp": ("mlp", ["task.p=17", "model.d_embed=16", "model.hidden=64", "train.steps=400",
                        "optim.lr=1e-2", "task.frac_train=0.6"]),
        "toy": ("liu-toy", ["train.steps=3000"]),
        "mnist": ("mnist-small", [f"task.data_dir={SHARED / 'data' / 'mnist'}", "train.steps=150"]),
    }[kind]
    preset, overrides = sets
    config = with_overrides(load_preset(preset), overrides + ["checkpoint.every=50", "checkpoint.dense_until=5",
                                                              "checkpoint.log_points=5"])
    run = train(config, tmp_path / kind, progress=False)
    m = run.metrics
    ph = locate_phases(m, cross_entropy=config.train.loss == "cross_entropy")
    assert_phases_consistent(ph, m["step"])
    # every consumer dates the transitions the same way
    assert (run.info["memorization_step"], run.info["generalization_step"]) == transition_steps(m)
    assert (ph["memorization_step"], ph["generalization_step"]) == transition_steps(m)
    assert (run.memorization_step, run.generalization_step) == transition_steps(m)
    assert ph["memorization_step"] is not None, "each family memorizes within its short run"

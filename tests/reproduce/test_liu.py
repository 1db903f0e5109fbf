"""`grokscope reproduce liu`: Liu et al. 2022's toy model (RQI against accuracy, the critical
training fraction, the phase diagram) against the authors' default run and the paper's phases."""

import json

import numpy as np
import pytest
from helpers import cli

from grokscope.measures.transitions import classify_phase
from grokscope.reproduce import RunData
from grokscope.reproduce.liu import (
    NEVER,
    QUICK_CELLS,
    agreement,
    cell_steps,
    checks,
    figure,
    phase_checks,
    phase_grid,
    phase_tables,
    published_grid,
    run_phase,
)

STEPS = np.arange(0, 100001, 10)


def run(coords, train_at, test_at, steps=STEPS, rqi_at=None, name="r"):
    """A run whose train / test accuracy jump to 1 at the given steps (None: never)."""
    big = 10 ** 9
    metrics = {"step": steps, "train_acc": (steps >= (train_at or big)).astype(float),
               "test_acc": (steps >= (test_at or big)).astype(float)}
    tables = {}
    if rqi_at is not None:
        ps = steps[steps % 10 == 0]
        tables["parallelogram"] = {"step": ps, "rqi": np.where(ps >= rqi_at, 1.0, 0.2),
                                   "predicted_accuracy": np.where(ps >= rqi_at, 1.0, 0.2)}
    return RunData(name, coords, 58, "complete", metrics, {}, tables)


LRS = np.logspace(-5, -2, 16)


def paper_like(lr, wd):
    """(train step, test step) placing a cell where the paper's diagram does: memorization at high
    lr and little weight decay, confusion at high lr and large weight decay, comprehension at low
    lr and moderate weight decay, grokking above it; low-lr cells generalize only after 1e4 steps."""
    if lr >= 1e-3:
        return (None, None) if wd >= 6 else (500, None)
    if lr <= 4e-5:
        return 3000, 30000
    return (1000, 1500) if wd <= 4 else (1000, 5000)


def grid_data(rule):
    return {"phase": [run({"optim.lr": float(lr), "optim.weight_decay": float(wd)}, *rule(lr, wd))
                      for lr in LRS for wd in range(11)]}


def test_run_phase_truncates_as_a_shorter_run_would():
    r = run({}, 3000, 30000)
    assert run_phase(r) == "grokking"
    assert run_phase(r, until=10000) == "memorization"
    steps = STEPS[STEPS <= 10000]
    assert run_phase(r, until=10000) == classify_phase(steps, r.metrics["train_acc"][:len(steps)],
                                                       r.metrics["test_acc"][:len(steps)])[0]


def published_like(lr, wd):
    """(train step, test step) of the published grid's cell, in grokscope's steps (index + 1)."""
    key = min(published_grid(), key=lambda k: abs(np.log(k[0] / lr)) + abs(k[1] - wd))
    return tuple(None if s == NEVER else s + 1 for s in published_grid()[key])


def test_phase_checks_pass_on_the_published_grid_and_fail_off_it():
    good = phase_checks("full", grid_data(published_like))
    assert all(c.ok is not False for c in good), [(c.quantity, c.ours) for c in good if c.ok is False]
    assert good[0].ours == "176 of 176 (100.0%)"
    grid = phase_grid(grid_data(published_like))
    assert len(grid) == 176 and grid[(float(LRS[-1]), 10.0)] == "confusion"

    def flipped(lr, wd):  # grokking below comprehension, memorization at low lr, no confusion
        if lr >= 1e-3:
            return 1000, 1500
        if lr <= 4e-5:
            return 500, None
        return (1000, 5000) if wd <= 4 else (1000, 1500)

    failed = {c.quantity for c in phase_checks("full", grid_data(flipped)) if c.ok is False}
    assert len(failed) == 6, failed   # every judged check


def test_agreement_counts_the_cells_in_the_published_phase():
    """The paper-like layout of the earlier test agrees on only part of the published grid; moving
    20 cells of the published grid off their phase takes the agreement below 90%."""
    ours = phase_grid(grid_data(published_like))
    same, n, off = agreement(ours)
    assert (same, n, off) == (176, 176, [])
    moved = dict(ours)
    for key in sorted(moved)[:20]:
        moved[key] = "confusion" if moved[key] != "confusion" else "comprehension"
    same, n, off = agreement(moved)
    assert (same, n, len(off)) == (156, 176, 20)
    assert not phase_checks("full", {"phase": [run({"optim.lr": lr, "optim.weight_decay": wd}, *published_like(lr, wd))
                                               for lr, wd in moved]})[0].ok is None


def test_cell_steps_use_the_authors_encoding_and_the_tables_one_row_per_cell():
    r = run({"optim.lr": 1e-4, "optim.weight_decay": 0.0}, 1651, None, steps=np.arange(3000))
    assert cell_steps(r) == (1650, NEVER) and run_phase(r) == "memorization"
    tables = phase_tables("full", {"phase": [r]})
    assert tables["phases_add_regression"] == {"decoder_lr": ["0.0001"], "decoder_weight_decay": ["0"],
                                               "phase": ["memorization"], "train_steps_to_90": [1650],
                                               "test_steps_to_90": [NEVER]}
    assert phase_tables("quick", {"phase": [r]}) == {}


def test_default_run_checks_compare_the_authors_steps():
    fractions = [run({"task.frac_train": f, "task.split_seed": s}, 500, 1000 if f >= 0.4 else None,
                     steps=np.arange(0, 3001, 10), rqi_at=700 if f >= 0.4 else 10 ** 9, name=f"f{f}{s}")
                 for f in (0.2, 0.8) for s in (1, 2)]
    cells = [run({"optim.lr": lr, "optim.weight_decay": wd}, *published_like(lr, wd),
                 steps=np.arange(0, (2000 if lr >= 1e-2 else 4500) + 1)) for lr, wd in QUICK_CELLS]
    high = [c for c in cells if c.coords["optim.lr"] >= 1e-2]
    cells = [c for c in cells if c.coords["optim.lr"] < 1e-2]
    data = {"default": [run({}, 1131, 1530, steps=np.arange(2501), rqi_at=800)], "fraction": fractions,
            "phase": cells, "phase-high-lr": high}
    good = checks("quick", data)
    assert all(c.ok is not False for c in good), [(c.quantity, c.ours) for c in good if c.ok is False]
    assert sum(c.ok is None for c in good) == 1   # trained models above the critical fraction: reported, not judged
    data["default"] = [run({}, 1300, 1200, steps=np.arange(2501), rqi_at=1500)]
    data["fraction"] = [run(r.coords, 500, 1000, steps=np.arange(0, 3001, 10), rqi_at=700, name=r.name)
                        for r in fractions]   # learns the representation below the critical fraction
    failed = {c.quantity for c in checks("quick", data) if not c.ok}
    for q in ("default run: train accuracy >= 0.9 (step)", "default run: test accuracy >= 0.9 (step)",
              "default run: RQI > 0.95 (step)", "RQI reaches 0.95 before test accuracy reaches 0.9",
              "trained models far below the critical fraction (<= 0.2): share learning the representation "
              "(final RQI > 0.95)"):
        assert q in failed, q
    # a quick cell 20 steps off the published grid, or in another phase, fails its check
    data["phase"] = [run(c.coords, 1294, 1524, steps=c.metrics["step"]) if c.coords["optim.weight_decay"] == 0
                     else run(c.coords, 1969, None, steps=c.metrics["step"]) for c in data["phase"]]
    quick = [c for c in checks("quick", data) if c.quantity.startswith("decoder lr")]
    assert [c.ok for c in quick] == [False, False, True, True]


def test_parts_alone_get_their_own_checks_and_panels():
    """`--parts phase-add-classification` trains one diagram: its checks and panel, no others."""
    cells = [run({"optim.lr": float(lr), "optim.weight_decay": float(wd)}, *paper_like(lr, wd))
             for lr in LRS for wd in range(11)]
    data = {"phase-add-classification": cells}
    only = checks("full", data)
    assert len(only) == 1 and only[0].quantity.startswith("phase diagram (addition, classification)"), only
    assert [p.title for p in figure("full", data).panels] == ["(g) ours: addition, CE"]
    both = checks("full", {**grid_data(paper_like), **data})
    assert len(both) == len(checks("full", grid_data(paper_like))) + 1


@pytest.mark.slow   # a whole reproduction or fresh processes: run by .ci/run after the README command
def test_quick_scale_reproduces_the_authors_default_run_and_the_four_phases(tmp_path):
    r = cli("reproduce", "liu", "--out", tmp_path / "l", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "l" / "results.json").read_text())
    by = {c["quantity"]: c for c in result["checks"]}
    judged = [c for c in result["checks"] if c["ok"] is not None]
    assert len(judged) == 11 and all(c["ok"] for c in judged), [(c["quantity"], c["ours"]) for c in judged if not c["ok"]]
    assert abs(int(by["default run: test accuracy >= 0.9 (step)"]["ours"].replace(",", "")) - 1530) <= 3
    assert (tmp_path / "l" / "figure.png").exists()


@pytest.mark.slow
def test_full_scale_matches_the_paper(tmp_path):
    r = cli("reproduce", "liu", "--scale", "full", "--out", tmp_path / "l", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "l" / "results.json").read_text())
    assert all(c["ok"] is not False for c in result["checks"]), result["checks"]

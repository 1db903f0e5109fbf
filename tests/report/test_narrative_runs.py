"""The narrative on short real runs of every preset family, against hand-checked expectations:
each run was trained and read once by hand, and what it should and should not say is written
here (the steps are re-derived from the run's own metrics, not copied from the report)."""

import pytest
from helpers import SHARED, TEACHER_STUDENT_FAST, kumar_config, tiny_config, toy

from grokscope.analysis.engine import analyze
from grokscope.config import load_preset, with_overrides
from grokscope.measures.transitions import transition_steps
from grokscope.training.loop import train


def summary_of(out) -> str:
    return (out / "report.md").read_text().split("## Summary")[1].split("<a id")[0]


def trained(tmp_path, config, probes, name="run"):
    run = train(config, tmp_path / name, progress=False)
    out = tmp_path / f"{name}-analysis"
    analyze(run, probes, out=out, progress=False)
    return run, summary_of(out)


def test_transformer_that_never_fits(tmp_path):
    run, text = trained(tmp_path, tiny_config(), ["metrics", "weights", "fourier", "progress", "phases"])
    assert transition_steps(run.metrics) == (None, None)
    assert "**When.** The model never fit its training set: train accuracy reached at most" in text
    assert "**Why.**" not in text and "Not judged" not in text   # nothing generalized: nothing to explain


def test_mlp_that_memorizes_and_does_not_generalize(tmp_path):
    config = with_overrides(load_preset("mlp"), ["train.steps=100", "task.p=13"])
    run, text = trained(tmp_path, config, ["metrics", "weights", "fourier", "progress", "phases"])
    mem, gen = transition_steps(run.metrics)
    assert mem is not None and gen is None
    assert f"memorized its training set at step {mem:,} (train accuracy 99%) but did not generalize" in text
    assert "**Why.**" not in text


def test_toy_short_run_never_fits_and_rqi_is_not_judged(tmp_path):
    run, text = trained(tmp_path, toy(steps=300), ["metrics", "weights", "parallelogram", "phases"])
    assert "never fit its training set" in text and "RQI" not in text


def test_kumar_regression_run_uses_the_loss_rule(tmp_path):
    run, text = trained(tmp_path, kumar_config("train.steps=400"),
                        ["metrics", "weights", "kumar_stats", "phases"])
    assert transition_steps(run.metrics)[0] is None
    assert "never fit its training set: train loss went from" in text and "never reaching 10% of its start" in text


def test_teacher_student_short_delay_and_alignment_not_seen(tmp_path):
    # the standard parameterization's larger init norm gives this run its short delay (PyTorch's
    # default init, the preset's, fits and generalizes at the same logged step)
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + ["model.init=fan_in"])
    run, text = trained(tmp_path, config, ["metrics", "weights", "ntk_alignment", "phases"])
    mem, gen = transition_steps(run.metrics)
    assert 1 < gen / mem < 2
    assert f"memorized its training set at step {mem:,} (train loss at 10% of its first value)" in text
    assert "A short delay: not grokking in the usual sense" in text
    assert "**Checked and not seen in this run.** The NTK's alignment with the targets did not rise" in text
    assert "- The weight norm's place on the L/U landscape: run `grokscope landscape" in text


def test_a_run_that_generalizes_as_it_fits(tmp_path):
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + ["task.n_train=2000"])
    run, text = trained(tmp_path, config, ["metrics", "weights", "phases"])
    mem, gen = transition_steps(run.metrics)
    assert gen <= mem
    assert "generalized as it fit, with no delay" in text and "This run does not grok" in text


def test_mnist_memorizes_without_reaching_99_percent_test(tmp_path):
    config = with_overrides(load_preset("mnist-small"), ["train.steps=150", f"task.data_dir={SHARED}/data/mnist"])
    run, text = trained(tmp_path, config, ["metrics", "weights", "fourier", "phases"])
    mem, gen = transition_steps(run.metrics)
    assert mem is not None and gen is None
    assert "did not generalize by the rule (test accuracy 99%)" in text and "its test accuracy reached at most" in text
    assert "Fourier" not in text  # skipped on MNIST, and nothing generalized to explain


def test_stacked_sweep_runs_get_the_same_narrative(tmp_path):
    from grokscope.store import load_run
    from grokscope.training.stacked import train_many

    configs = [tiny_config(train={"steps": 120, "seed": s}) for s in (0, 1)]
    train_many(configs, [tmp_path / "s0", tmp_path / "s1"], progress=False)
    for name in ("s0", "s1"):
        run = load_run(tmp_path / name)
        analyze(run, ["metrics", "phases"], out=tmp_path / f"{name}-a", progress=False)
        mem, gen = transition_steps(run.metrics)
        text = summary_of(tmp_path / f"{name}-a")
        assert (f"at step {mem:,}" in text) if mem is not None else "never fit" in text


@pytest.mark.skipif(not (SHARED / "fixtures" / "nanda_p113_wd0.1_seed1_final.pth").exists(),
                    reason="Nanda et al.'s checkpoint is not in ../shared/fixtures")
def test_imported_nanda_checkpoint_groks_and_one_checkpoint_dates_no_mechanism(tmp_path):
    """Nanda et al.'s published run (p = 113, wd 0.1): losses logged every epoch, one checkpoint.
    By hand: train loss at 10% of its start at epoch 130, test loss at epoch 92,480; the test loss
    peaks at epoch 1,550 and falls below 1 nat at 90,890."""
    from helpers import cli

    r = cli("import", "nanda", SHARED / "fixtures" / "nanda_p113_wd0.1_seed1_final.pth", "--out", tmp_path / "n")
    assert r.returncode == 0, r.stderr
    r = cli("analyze", tmp_path / "n", "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    text = summary_of(tmp_path / "a")
    assert ("memorized its training set at step 130 (train loss at 10% of its first value) and generalized at "
            "step 92,480") in text and "This is grokking" in text
    assert "memorization until step 1,550 (the test-loss peak), circuit formation until step 90,890" in text
    assert "diverged" not in text  # its weight norm was never logged: not a divergence
    assert "the `fourier` table has 1 checkpoint(s)" in text and "**Why.**" not in text

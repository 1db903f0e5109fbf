"""The report's narrative: each claim written when, and only when, the numbers support it.

Synthetic tables with known transitions check every rule on both sides of its threshold; the
hand-checked expectations of real short runs of each preset family are in test_narrative_runs.py.
"""

import numpy as np
import pytest

from grokscope.measures.transitions import locate_phases
from grokscope.report.narrative import narrative, when_claims

STEPS = np.arange(0, 3001, 10)


def sigmoid(centre: float, width: float = 40.0) -> np.ndarray:
    return 1 / (1 + np.exp(-(STEPS - centre) / width))


def training(mem=100, gen=2000, regression=False, **extra) -> dict:
    train_acc = 0.01 + 0.99 * sigmoid(mem - 100)
    test_acc = 0.01 + 0.99 * sigmoid(gen - 100) if gen is not None else 0.01 + 0.3 * sigmoid(mem)
    t = {"step": STEPS, "train_loss": 4.0 * (1 - sigmoid(mem - 100)) + 1e-6,
         "test_loss": 4.0 * (1 - sigmoid(gen - 100)) + 1e-4 if gen is not None else np.full(len(STEPS), 5.0),
         "train_acc": train_acc, "test_acc": test_acc, "weight_norm": np.full(len(STEPS), 40.0)}
    if regression:
        t["train_acc"] = t["test_acc"] = np.full(len(STEPS), np.nan)
    t.update(extra)
    return t


def story(tables=None, weight_decay=1.0, **kw):
    t = training(**kw)
    return narrative(tables or {}, locate_phases(t), t, task="modular", weight_decay=weight_decay)


def texts(claims) -> str:
    return " ".join(c.text for c in claims)


def test_grokking_run_states_both_steps_the_delay_and_the_phases():
    n = story(mem=100, gen=2000)
    when = texts(n.when)
    assert "memorized its training set at step 190" in when and "generalized at step 2,090" in when
    assert "1,900 steps later, 11.0x the memorization step. This is grokking." in when
    assert "By Nanda et al.'s three phases: memorization until step" in when
    assert all(c.figure == "training" for c in n.when)


def test_short_delay_is_not_called_grokking():
    when = texts(story(mem=1000, gen=1400).when)
    assert "A short delay: not grokking in the usual sense." in when and "This is grokking" not in when


def test_a_run_that_generalizes_as_it_fits_does_not_grok():
    when = texts(story(mem=500, gen=500).when)
    assert "generalized as it fit, with no delay" in when and "This run does not grok." in when


def test_a_run_that_never_generalizes_gets_no_why():
    n = story(mem=100, gen=None, fourier={})
    assert "did not generalize by the rule (test accuracy 99%)" in texts(n.when)
    assert "its test accuracy reached at most 31.0%" in texts(n.when)
    assert n.why == [] and n.not_judged == []


def test_a_run_that_never_fits():
    t = training(mem=100, gen=None)
    t["train_acc"] = np.full(len(STEPS), 0.5)
    n = narrative({}, locate_phases(t), t)
    assert texts(n.when).startswith("The model never fit its training set: train accuracy reached at most 50.0%")


def test_regression_uses_the_loss_rule_in_words():
    when = texts(story(mem=100, gen=2000, regression=True).when)
    assert "(train loss at 10% of its first value)" in when and "(test loss at 10% of its first value)" in when


def test_divergence_and_single_step_runs_are_said_so():
    t = training()
    t["train_loss"] = t["train_loss"].copy()
    t["train_loss"][50:] = np.nan
    assert "diverged at step 500" in texts(when_claims(t, locate_phases(t)))
    one = {k: v[:1] for k, v in training().items()}
    assert "metrics at one step only (step 0" in texts(when_claims(one, {}))


def test_accuracy_logged_at_one_step_dates_the_transitions_by_the_losses():
    """An imported run: losses logged throughout, accuracy only re-measured at the last step."""
    t = training(mem=100, gen=2000)
    for split in ("train", "test"):
        t[f"{split}_acc"] = np.full(len(STEPS), np.nan)
        t[f"{split}_acc"][-1] = 1.0
    assert "(test loss at 10% of its first value)" in texts(when_claims(t, locate_phases(t)))


def fourier_table(rise_at: float, rise: float = 0.5) -> dict:
    g = 0.05 + rise * sigmoid(rise_at, 200)
    return {"step": STEPS, "gini_embed": g, "key_energy_share": 0.15 + 0.75 * sigmoid(rise_at, 200),
            "key_frequencies": np.array(["7 12 22"] * len(STEPS), dtype=object)}


def test_fourier_sparsity_before_generalization_is_a_why_claim():
    n = story({"fourier": fourier_table(1000)}, mem=100, gen=2000)
    (claim,) = n.why
    assert claim.figure == "fourier" and claim.source == "Nanda et al. 2023"
    assert "rose from 0.053 to 0.55, half of the rise by step 1,010, 1,080 steps before step 2,090" in claim.text
    assert "3 key frequencies (7, 12, 22) hold 90% of W_E's energy at the end, against 16%" in claim.text


def test_fourier_sparsity_after_generalization_or_flat_is_not_claimed():
    late = story({"fourier": fourier_table(2500)}, mem=100, gen=2000)
    assert late.why == [] and "only once the model had generalized" in texts(late.not_seen)
    flat = story({"fourier": fourier_table(1000, rise=0.02)}, mem=100, gen=2000)
    assert flat.why == [] and "did not become sparse" in texts(flat.not_seen)


def progress_table(restricted_at: float, excluded_rise: float = 8.0) -> dict:
    return {"step": STEPS, "restricted_loss": 4.0 * (1 - sigmoid(restricted_at)) + 1e-6,
            "test_loss": 4.0 * (1 - sigmoid(1800)) + 1e-4,
            "excluded_loss": 0.05 + excluded_rise * sigmoid(1000, 100)}


def test_restricted_loss_before_test_loss_and_excluded_loss_rising():
    n = story({"progress": progress_table(800)}, mem=100, gen=2000)
    assert "restricted loss (the loss with only the key frequencies kept) fell below 1 nat at step" in texts(n.why)
    assert "excluded loss (the train loss with them removed) rose from 0.05" in texts(n.why)
    assert {c.source for c in n.why} == {"Nanda et al. 2023"}


def test_restricted_loss_after_test_loss_is_not_claimed():
    n = story({"progress": progress_table(2500, excluded_rise=0.2)}, mem=100, gen=2000)
    assert n.why == []
    assert "did not fall before the test loss" in texts(n.not_seen)
    assert "excluded loss did not rise" in texts(n.not_seen)


def lu_table(end_norm: float, follows: bool = True, start_norm: float = 60.0, lowest: float = 0.01) -> dict:
    w = np.linspace(start_norm, end_norm, len(STEPS))
    land = np.where(w < 35, 0.01, 2.0)
    return {"step": STEPS, "weight_norm": w, "norm_scale": w / 10, "landscape_test_loss": land,
            "test_loss": land * 1.1 if follows else np.full(len(STEPS), 2.0),
            "landscape_min_test_loss": np.full(len(STEPS), lowest)}


def test_weight_norm_into_the_good_band_with_the_test_loss_following_is_an_omnigrok_claim():
    n = story({"landscape": lu_table(20)}, mem=100, gen=2000)
    (claim,) = n.why
    assert claim.figure == "landscape" and "Omnigrok" in claim.source
    assert claim.text.startswith("Weight decay walked the weight norm into the landscape's good band and the test "
                                 "loss followed: from the first checkpoint after memorization (step 190)")
    assert "the landscape's best test loss at that norm 2 → 0.01, and the run's own test loss 2.2 → 0.011" in claim.text


def test_weight_norm_falling_without_a_landscape_is_stated_and_the_band_not_judged():
    n = story({"weights": {"step": STEPS, "weight_norm": np.linspace(60, 20, len(STEPS))}}, mem=100, gen=2000)
    assert "weight norm fell from 60 (step 0) to 32.1 by the generalization step" in texts(n.why)
    assert any("`--probe landscape" in x for x in n.not_judged)
    flat = story({"weights": {"step": STEPS, "weight_norm": np.full(len(STEPS), 60.0)}}, mem=100, gen=2000)
    assert flat.why == []


def test_a_run_that_stays_outside_the_band_is_explained_by_it():
    n = story({"landscape": lu_table(40)}, mem=100, gen=None)
    assert "stayed outside the landscape's good band" in texts(n.why)


def test_a_run_that_starts_inside_the_band_needs_no_delay():
    n = story({"landscape": lu_table(20.5, start_norm=20)}, mem=500, gen=500)
    assert "started inside the landscape's good band, where its best test loss is already 0.01" in texts(n.why)


def test_omnigrok_claims_rest_on_the_band_and_on_the_weight_decay():
    """Each Omnigrok sentence checks its premise: the band is read against the landscape's lowest
    test loss (a landscape whose lowest loss is far below 0.01 puts 0.01 outside the band), and
    weight decay is credited only where the run had it."""
    far = story({"landscape": lu_table(20, lowest=1e-4)}, mem=100, gen=2000)
    assert far.why == [] and texts(far.not_seen).startswith(
        "Omnigrok's account held only in part (the norm had not entered the good band by the last checkpoint): ")
    inside = story({"landscape": lu_table(20.5, start_norm=20, lowest=1e-4)}, mem=500, gen=500)
    assert "started inside" not in texts(inside.why)
    bare = story({"landscape": lu_table(20)}, mem=100, gen=2000, weight_decay=0.0)
    assert texts(bare.why).startswith("The weight norm fell, without weight decay, into the landscape's good band")
    unknown = story({"landscape": lu_table(20)}, mem=100, gen=2000, weight_decay=None)
    assert texts(unknown.why).startswith("The weight norm fell into the landscape's good band")
    entered = story({"landscape": lu_table(40, start_norm=20)}, mem=100, gen=None)   # left the band: not "stayed outside"
    assert "stayed outside" not in texts(entered.why)
    old = {k: v for k, v in lu_table(20).items() if k != "landscape_min_test_loss"}
    assert any("predates" in x for x in story({"landscape": old}, mem=100, gen=2000).not_judged)


def test_a_restricted_loss_that_never_falls_below_1_is_said():
    t = progress_table(800)
    t["restricted_loss"] = np.full(len(t["step"]), 2.5)
    n = story({"progress": t}, mem=100, gen=2000)
    assert "restricted loss (the loss with only the key frequencies kept) never fell below 1 nat: its lowest was 2.5" \
        in texts(n.not_seen)


def test_a_test_loss_that_does_not_follow_the_landscape_is_not_claimed():
    n = story({"landscape": lu_table(20, follows=False)}, mem=100, gen=2000)
    assert n.why == [] and "did not follow the L/U landscape" in texts(n.not_seen)
    assert "the two losses are not rank-correlated" in texts(n.not_seen)


def test_an_analysis_written_under_the_probes_earlier_name_is_still_read():
    assert texts(story({"lu": lu_table(20)}, mem=100, gen=2000).why) == \
        texts(story({"landscape": lu_table(20)}, mem=100, gen=2000).why) != ""


def test_ntk_alignment_rising_by_the_transition():
    a = {"step": STEPS, "alignment_train": 0.2 + 0.5 * sigmoid(1800, 100)}
    n = story({"ntk_alignment": a}, mem=100, gen=2000)
    assert "left the lazy regime: the alignment of its NTK with the targets rose from 0.2 to 0.7 (+250%), half of " \
           "the rise by step 1,800, between memorization and generalization (step 2,090)" in texts(n.why)
    modest = story({"ntk_alignment": {"step": STEPS, "alignment_train": 0.2 + 0.06 * sigmoid(120, 10)}}, gen=2000)
    assert "alignment of its NTK with the targets rose modestly, from 0.2 to 0.26 (+30%)" in texts(modest.why)
    assert "lazy" not in texts(modest.why) and "before the model had even memorized (step 190)" in texts(modest.why)
    at = story({"ntk_alignment": {"step": STEPS, "alignment_train": 0.2 + 0.5 * sigmoid(2050, 30)}}, gen=2000)
    assert "at generalization (step 2,090)" in texts(at.why)
    flat = story({"ntk_alignment": {"step": STEPS, "alignment_train": np.full(len(STEPS), 0.3)}}, gen=2000)
    assert flat.why == [] and "did not rise" in texts(flat.not_seen)


def test_ntk_alignment_that_rises_and_falls_back_is_not_judged_not_a_crash():
    """From 0.01 up to 0.9 and back to 0.03: +200% first to last, but no half-way step (the
    change is under 5% of the peak), which once raised a TypeError."""
    bump = 0.01 + 0.89 * np.exp(-((STEPS - 1000) / 200.0) ** 2) + 0.02 * sigmoid(2500)
    n = story({"ntk_alignment": {"step": STEPS, "alignment_train": bump}}, mem=100, gen=2000)
    assert "NTK" not in texts(n.why) and "NTK" not in texts(n.not_seen)
    assert any("the NTK alignment's timing: it went from 0.01 to 0.03 (+200%) but peaked at 0.9 (step 1,000)" in line
               for line in n.not_judged), n.not_judged


def test_rqi_rising_with_test_accuracy_reports_the_rank_correlation():
    n = story({"parallelogram": {"step": STEPS, "rqi": 0.1 + 0.8 * sigmoid(1900, 60)}}, mem=100, gen=2000)
    assert "RQI (the share of parallelograms i + j = m + n the embedding closes) rose from 0.1 to 0.9" in texts(n.why)
    assert "Spearman ρ = 1.00 over 301 checkpoints" in texts(n.why)
    falling = story({"parallelogram": {"step": STEPS, "rqi": 0.9 - 0.8 * sigmoid(1900, 60)}}, mem=100, gen=2000)
    assert falling.why == [] and "RQI did not rise with test accuracy" in texts(falling.not_seen)


def test_what_could_not_be_judged_names_the_probe_to_run():
    n = story({}, mem=100, gen=2000)
    judged = " ".join(n.not_judged)
    assert "`--probe fourier`" in judged and "`--probe progress`" in judged and "`--probe ntk_alignment`" in judged
    t = training(mem=100, gen=2000)
    mnist = narrative({}, locate_phases(t), t, {"fourier": {"status": "skipped", "reason": "needs a modular task"}},
                      task="mnist")
    judged = " ".join(mnist.not_judged)
    assert "the `fourier` probe was skipped (needs a modular task)" in judged
    assert "--probe progress" not in judged and "--probe parallelogram" not in judged  # they do not apply


def test_one_checkpoint_dates_nothing():
    one = {k: v[-1:] for k, v in progress_table(800).items()}
    n = story({"progress": one}, mem=100, gen=2000)
    assert n.why == [] and "the `progress` table has 1 checkpoint(s)" in " ".join(n.not_judged)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_weight_norm_never_recorded_is_not_a_divergence(bad):
    from grokscope.measures.transitions import divergence_step

    t = training()
    t["weight_norm"] = np.full(len(STEPS), np.nan)
    assert divergence_step(t) is None
    t["weight_norm"] = np.linspace(1, 2, len(STEPS))
    t["weight_norm"][100] = bad
    assert divergence_step(t) == 1000


def llc_table(peak_at: float, warnings: str = "") -> dict:
    rise = sigmoid(peak_at - 200, 60)
    fall = 1 - 0.8 * sigmoid(1900, 100)
    return {"step": STEPS, "llc_mean": 5 + 40 * rise * fall, "llc_std": np.full(len(STEPS), 1.0),
            "llc_warnings": np.array([warnings] * len(STEPS), dtype=object)}


def test_llc_peak_then_fall_with_the_test_loss_is_claimed_when_the_diagnostics_are_clean():
    n = story({"llc": llc_table(300)}, mem=100, gen=2000)
    text = texts(n.why)
    assert "local learning coefficient rose from" in text and "tracking the test loss (Spearman ρ" in text
    assert any(c.figure == "llc" and "Lau et al. 2023" in c.source for c in n.why)
    flagged = story({"llc": llc_table(300, warnings="loss spikes in 1 of 4 chains")}, mem=100, gen=2000)
    assert flagged.why == [] and "the SGLD diagnostics flagged 301 of 301 checkpoints" in " ".join(flagged.not_judged)
    assert "grokscope llc-calibrate RUN" in " ".join(flagged.not_judged)


def test_an_llc_that_only_rises_is_not_claimed():
    rising = {"step": STEPS, "llc_mean": 5 + 40 * sigmoid(1000), "llc_warnings": np.array([""] * len(STEPS), dtype=object)}
    n = story({"llc": rising}, mem=100, gen=2000)
    assert n.why == [] and "did not peak and then fall" in texts(n.not_seen)

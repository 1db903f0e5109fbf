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


def _claim(text: str, start: str) -> str:
    """The Why sentence that starts with `start`, up to its figure link."""
    assert start in text, f"no claim starting {start!r} in:\n{text}"
    return text[text.index(start):].split("([figure")[0]


def _numbers(sentence: str) -> list[float]:
    import re

    return [float(x.replace(",", "")) for x in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", sentence)]


def _gini(x):
    import numpy as np

    x = np.sort(np.asarray(x, dtype=np.float64))
    n = len(x)
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def _key_part(logits, a, b, p, keys):
    """Each class's logit over the grid, least-squares projected onto its mean and cos/sin of
    2πk(a+b)/p for the key frequencies: a re-computation that shares no code with the probe."""
    import numpy as np

    phase = 2 * np.pi * np.outer(a + b, keys) / p
    basis = np.column_stack([np.ones(len(a)), np.cos(phase), np.sin(phase)])
    coef, *_ = np.linalg.lstsq(basis, logits, rcond=None)
    return basis @ coef, basis[:, 1:] @ coef[1:]


def _cross_entropy(logits, labels):
    import numpy as np
    from scipy.special import logsumexp

    return float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]))


@pytest.mark.slow
def test_a_grokking_transformer_earns_each_why_claim_real_why(tmp_path):
    """A real grokking run (the quickstart transformer at p = 31, half the pairs; by hand: it
    memorizes near step 40 and generalizes near 630) gets the four positive Why claims of
    Nanda et al. and Omnigrok, and every number they state is re-derived here from the
    checkpoints and the metrics with code that shares nothing with the probes."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    config = with_overrides(load_preset("quickstart"),
                            ["task.p=31", "task.frac_train=0.5", "train.steps=900"])
    run, text = trained(tmp_path, config, ["metrics", "weights", "fourier", "progress", "phases"])
    m = {k: np.asarray(v, dtype=np.float64) for k, v in run.metrics.items()}
    mem = int(m["step"][np.argmax(m["train_acc"] >= 0.99)])
    gen = int(m["step"][np.argmax(m["test_acc"] >= 0.99)])
    assert gen >= 2 * mem and f"memorized its training set at step {mem:,}" in text
    assert f"generalized at step {gen:,}" in text and "This is grokking" in text
    p = config.task.p
    tokens = run.task.all_inputs.numpy()
    a, b, labels = tokens[:, 0], tokens[:, 1], run.task.all_labels.numpy()

    def logits_at(step):
        with torch.no_grad():
            return run.model(step)(run.task.all_inputs).double().numpy()

    # Fourier sparsity: the Gini of W_E's Fourier norms at the last checkpoint, and the key frequencies
    fourier = _claim(text, "The embedding became sparse in the Fourier basis before the model generalized")
    g0, g1, half, lead, gen_said, n_keys, *rest = _numbers(fourier)
    x = np.arange(p)
    rows = [np.full(p, 1 / np.sqrt(p))]
    for k in range(1, p // 2 + 1):
        rows += [np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)]
    basis = np.array([r / np.linalg.norm(r) for r in rows])
    W_E = load_file(run.checkpoint_path(run.steps[-1]))["embed.W_E"][:p].double().numpy()
    norms = np.linalg.norm(basis @ W_E, axis=1)
    assert _gini(norms) == pytest.approx(g1, abs=0.006)   # stated to 2 significant figures
    assert half < gen_said == gen and lead == gen - half
    keys = [int(k) for k in rest[:int(n_keys)]]
    per_freq = [np.hypot(norms[2 * k - 1], norms[2 * k]) for k in range(1, p // 2 + 1)]
    assert set(keys) == {int(k) + 1 for k in np.argsort(per_freq)[::-1][:len(keys)]}

    # the restricted loss: below 1 nat at the stated step, not at the checkpoint before it
    restricted = _claim(text, "The generalizing circuit formed before it showed in the test loss")
    _, r1, lead, t1 = _numbers(restricted)   # 1 nat, the step, the lead, the test-loss step
    assert lead == t1 - r1 and r1 < t1
    before = max(s for s in run.steps if s < r1)
    kept = {s: _key_part(logits_at(s), a, b, p, keys)[0] for s in (before, int(r1))}
    assert _cross_entropy(kept[int(r1)], labels) < 1.0 <= _cross_entropy(kept[before], labels)

    # the excluded loss (train pairs, the key directions removed) at the two stated steps
    excluded = _claim(text, "The model came to rely on the key frequencies")
    e_lo, s_lo, e_hi, s_hi = _numbers(excluded)
    train_rows = run.task.train_indices.numpy()
    for e, s in ((e_lo, s_lo), (e_hi, s_hi)):
        logits = logits_at(int(s))
        removed = logits - _key_part(logits, a, b, p, keys)[1]
        loss = _cross_entropy(removed[train_rows], labels[train_rows])
        assert loss == pytest.approx(e, rel=0.01, abs=0.006)
    assert e_hi - e_lo >= 1.0

    # the weight norm, from the checkpoints' tensors: its peak before generalization, and its value
    # at the last checkpoint at or before the generalization step
    norm = _claim(text, "The weight norm fell from")
    w_peak, s_peak, w_gen = _numbers(norm)

    def weight_norm(step):
        tensors = load_file(run.checkpoint_path(step)).values()
        return float(np.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors)))

    norms = {s: weight_norm(s) for s in run.steps if s <= gen}
    assert max(norms, key=norms.get) == s_peak and norms[s_peak] == pytest.approx(w_peak, rel=0.006)
    assert norms[max(norms)] == pytest.approx(w_gen, rel=0.006) and w_gen <= 0.9 * w_peak


@pytest.mark.slow
def test_a_toy_that_builds_its_representation_earns_the_rqi_claim_real_why(tmp_path):
    """Liu et al.'s toy addition at its default run, 3,000 steps (by hand: test and train
    accuracy reach 99% together near step 2,400): the RQI claim, with RQI, its rank correlation
    with test accuracy and the accuracies re-computed from the checkpoints by brute force."""
    import itertools

    import numpy as np
    from safetensors.torch import load_file
    from scipy.stats import spearmanr

    run, text = trained(tmp_path, toy(steps=3000), ["metrics", "weights", "parallelogram", "phases"])
    claim = _claim(text, "The embedding grew the structure generalization needs")
    r0, r1, acc0, acc1, rho, count = _numbers(claim)[-6:]
    p = run.config.task.p
    sums = {}
    for i, j in itertools.combinations_with_replacement(range(p), 2):
        sums.setdefault(i + j, []).append((i, j))
    quads = [(*u, *v) for pairs in sums.values() for u, v in itertools.combinations(pairs, 2)]

    def rqi(step):
        E = load_file(run.checkpoint_path(step))["embed.W_E"].double().numpy()
        E = E - E.mean(0)
        E = E / np.where(E.std(0, ddof=1) > 0, E.std(0, ddof=1), 1)
        return np.mean([((E[i] + E[j] - E[m] - E[n]) ** 2).mean() < 0.01 for i, j, m, n in quads])

    steps = run.steps
    values = np.array([rqi(s) for s in steps])
    logged, test_acc = np.asarray(run.metrics["step"]), np.asarray(run.metrics["test_acc"], dtype=float)
    acc = test_acc[np.searchsorted(logged, steps, side="right") - 1]  # last logged at or before
    assert count == len(steps)
    assert (values[0], values[-1]) == (pytest.approx(r0, abs=0.0006), pytest.approx(r1, abs=0.006))
    assert (acc[0], acc[-1]) == (pytest.approx(acc0, abs=0.006), pytest.approx(acc1, abs=0.006))
    assert spearmanr(values, acc).statistic == pytest.approx(rho, abs=0.006)
    assert r1 - r0 >= 0.1 and rho >= 0.5


@pytest.mark.slow
def test_a_committee_that_groks_earns_the_ntk_alignment_claim_real_why(tmp_path):
    """Kumar et al.'s committee machine, shrunk (D = 12, 16 units, 80 training points; by hand
    it fits by step 670 and generalizes by 1,510): the NTK-alignment claim, with the alignment
    re-computed from per-example gradients (autograd, one backward per point) at the first and
    last checkpoints and on both sides of the stated half-way step."""
    import numpy as np
    import torch

    run, text = trained(tmp_path, kumar_config("train.steps=3000", "task.n_train=80"),
                        ["metrics", "weights", "ntk_alignment", "phases"])
    claim = _claim(text, "The alignment of its NTK with the targets rose")
    a0, a1, rise, half = _numbers(claim)[:4]
    x = run.task.train_inputs
    y = run.task.train_labels.double().numpy().reshape(len(x), -1)

    def alignment(step):
        model = run.model(step)
        params = [q for q in model.parameters() if q.requires_grad]
        rows = [torch.autograd.grad(model(x[i:i + 1]).sum(), params) for i in range(len(x))]
        J = np.stack([torch.cat([g.flatten() for g in row]).double().numpy() for row in rows])
        H = np.eye(len(x)) - 1 / len(x)
        K, T = H @ J @ J.T @ H, H @ y @ y.T @ H
        return float((K * T).sum() / (np.linalg.norm(K) * np.linalg.norm(T)))

    first, last = alignment(run.steps[0]), alignment(run.steps[-1])
    assert first == pytest.approx(a0, rel=0.006) and last == pytest.approx(a1, rel=0.006)
    assert 100 * (last - first) / first == pytest.approx(rise, abs=1)
    before = max(s for s in run.steps if s < half)
    assert alignment(int(half)) - first >= 0.5 * (last - first) > alignment(before) - first


@pytest.mark.slow
def test_weight_decay_walking_the_norm_into_the_good_band_earns_the_omnigrok_claim_real_why(tmp_path):
    """Omnigrok's teacher-student MLP started at 4x its standard init with AdamW (weight decay
    0.5; by hand: it fits by step 30 and its test loss reaches 10% of its start by 105), placed
    on a five-point landscape of the same model: the claim that weight decay walked the norm into
    the good band, with the norms re-computed from the checkpoints' tensors, the landscape's
    losses re-interpolated from landscape.csv and the rank correlation re-derived."""
    import csv

    import numpy as np
    from safetensors.torch import load_file
    from scipy.stats import spearmanr

    from grokscope.experiments.landscape import landscape

    base = with_overrides(load_preset("teacher-student"), ["train.log_every=10", "train.steps=1000"])
    landscape(base, [0.3, 0.6, 1, 2, 4], tmp_path / "ls", jobs=2, progress=False)
    config = with_overrides(load_preset("teacher-student"),
                            ["train.steps=3000", "train.log_every=5", "model.init_scale=4",
                             "optim.name=adamw", "optim.weight_decay=0.5", "optim.lr=1e-3"])
    run = train(config, tmp_path / "run", progress=False)
    analyze(run, ["metrics", "weights", "landscape", "phases"], out=tmp_path / "a",
            params={"landscape": {"dir": str(tmp_path / "ls")}}, progress=False)
    text = summary_of(tmp_path / "a")
    claim = _claim(text, "Weight decay walked the weight norm into the landscape's good band")
    (first, last, w0, w1, _, _, l0, l1, t0, t1, rho, count, band, _, lowest) = _numbers(claim)

    with open(tmp_path / "ls" / "landscape.csv") as f:
        points = list(csv.DictReader(f))
    log_norms = np.log([float(r["norm"]) for r in points])
    log_tests = np.log([float(r["best_test_loss"]) for r in points])

    def on_landscape(norm):
        return float(np.exp(np.interp(np.log(norm), log_norms, log_tests)))

    def weight_norm(step):
        tensors = load_file(run.checkpoint_path(step)).values()
        return float(np.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors)))

    steps = [s for s in run.steps if s >= first]
    norms = np.array([weight_norm(s) for s in steps])
    logged = np.asarray(run.metrics["step"])
    own = np.asarray(run.metrics["test_loss"], dtype=float)[np.searchsorted(logged, steps, side="right") - 1]
    places = np.array([on_landscape(n) for n in norms])
    assert (steps[0], steps[-1], len(steps)) == (first, last, count)
    assert (norms[0], norms[-1]) == (pytest.approx(w0, rel=0.006), pytest.approx(w1, rel=0.006))
    assert (places[0], places[-1]) == (pytest.approx(l0, rel=0.006), pytest.approx(l1, rel=0.006))
    assert (own[0], own[-1]) == (pytest.approx(t0, rel=0.006), pytest.approx(t1, rel=0.006))
    assert lowest == pytest.approx(np.exp(log_tests.min()), rel=0.006)
    assert band == pytest.approx(2 * lowest, rel=0.01)
    assert places[0] > band >= places[-1] and norms[-1] <= 0.9 * norms[0]     # walked in, and fell
    assert spearmanr(places, own).statistic == pytest.approx(rho, abs=0.006) and rho >= 0.5
    assert config.optim.weight_decay > 0

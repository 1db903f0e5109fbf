"""The Recorder in users' own loops, and plain PyTorch models under every probe."""

import json
import math
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import ROOT, run_cli
from torch import nn
from user_models import HOOKS, Plain

import grokscope
from grokscope.errors import UsageError
from grokscope.external.recorder import Recorder, measured_row
from grokscope.models.adapter import Adapted, parse_hooks
from grokscope.store import Run, read_metrics_rows

EXAMPLE = ROOT / "docs" / "examples" / "own_loop.py"


def record(out, steps=40, log=True, hooks=HOOKS, test_loss=1.0, **kw):
    torch.manual_seed(0)
    model = Plain()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    rec = Recorder(out, model, task={"name": "modular", "p": 11, "frac_train": 0.5}, steps=steps, hooks=hooks, **kw)
    x, y = rec.task.train_inputs, rec.task.train_labels
    for step in range(steps + 1):
        loss = nn.functional.cross_entropy(model(x), y)
        if rec.wants(step):
            rec.checkpoint(step, model)
        if log:
            rec.log(step, train_loss=loss, test_loss=test_loss)
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return rec, model


@pytest.mark.slow   # in CI's second pass (scripts/test.sh)
def test_example_script_records_a_run_that_every_fitting_probe_analyzes(tmp_path):
    """The documented example, as a user runs it (a fresh process), then `grokscope analyze`."""
    out = tmp_path / "own"
    r = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out), "--steps", "300"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    run = Run(out)
    assert run.status == "complete" and run.steps == run.info["schedule"]
    assert [row[0] for row in read_metrics_rows(out / "metrics.csv")] == list(range(301))
    assert run.info["memorization_step"] is not None
    assert run.config.model.name == "custom" and run.config.model.factory.endswith("own_loop.py:Net")
    r = run_cli("analyze", out, "--out", tmp_path / "an", "--count", "4", "--quiet", "--probe",
                "metrics,weights,fourier,progress,cka,ntk_spectrum,parallelogram,kumar_stats")
    assert r.returncode == 0, r.stderr
    probes = json.loads((tmp_path / "an" / "manifest.json").read_text())["probes"]
    assert {n for n, e in probes.items() if e["status"] == "ok"} >= {
        "metrics", "weights", "fourier", "progress", "cka", "ntk_spectrum", "parallelogram"}
    assert probes["kumar_stats"]["status"] == "skipped"
    # the metrics probe recomputes from the checkpoints what the loop logged
    metrics = (tmp_path / "an" / "metrics.csv").read_text().splitlines()
    step, train_loss = metrics[-1].split(",")[:2]
    logged = {row[0]: row for row in read_metrics_rows(out / "metrics.csv")}
    assert float(train_loss) == pytest.approx(logged[int(step)][1], rel=1e-4)


def test_recorder_writes_the_schedule_rows_and_transitions(tmp_path):
    rec, model = record(tmp_path / "r", steps=40)
    run = rec.finish()
    assert run.steps == rec.schedule == grokscope.checkpoint_schedule(40, run.config.checkpoint)
    rows = read_metrics_rows(tmp_path / "r" / "metrics.csv")
    assert [r[0] for r in rows] == list(range(41))
    assert math.isnan(rows[0][2])                                  # train_acc not logged: NaN
    assert rows[-1][5] == pytest.approx(math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters())))
    assert run.model(40).state_dict().keys() == model.state_dict().keys()
    torch.testing.assert_close(run.model(40)(run.task.all_inputs), model.eval()(run.task.all_inputs))
    assert run.config.optim.warmup_steps == 0


def test_without_test_metrics_finish_measures_them_from_the_checkpoints(tmp_path):
    rec, model = record(tmp_path / "r", steps=30, log=False)
    run = rec.finish()
    rows = read_metrics_rows(tmp_path / "r" / "metrics.csv")
    assert [r[0] for r in rows] == run.steps
    expected = measured_row(run.model(30), run.task, run.config, 30)
    assert rows[-1][:6] == pytest.approx(expected[:6])
    assert rows[-1][3] == pytest.approx(float(nn.functional.cross_entropy(  # noqa: E501
        model(run.task.test_inputs).detach().double(), run.task.test_labels)), rel=1e-6)


@pytest.mark.slow   # fresh processes and a SIGKILL (about 30 s on 2 cores): run by .ci/run
def test_a_crashed_script_leaves_an_analyzable_run(tmp_path):
    """An exception mid-loop (the `with` form) and a SIGKILL: both leave checkpoints and metrics
    up to the last checkpoint that `analyze` reads."""
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from user_models import Plain, HOOKS
        from grokscope import Recorder
        how, out = sys.argv[1], sys.argv[2]
        model = Plain()
        with Recorder(out, model, task={{"name": "modular", "p": 11}}, steps=200, hooks=HOOKS,
                      model_factory="user_models:Plain", metrics_seconds=0) as rec:
            for step in range(201):
                if rec.wants(step):
                    rec.checkpoint(step, model)
                rec.log(step, train_loss=1.0, test_loss=2.0)
                if step == 150:
                    if how == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    raise RuntimeError("the user's bug")
    """))
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "tests")}
    for how, status, code in (("raise", "interrupted", 1), ("kill", "running", -signal.SIGKILL)):
        out = tmp_path / how
        r = subprocess.run([sys.executable, str(script), how, str(out)], capture_output=True, text=True, env=env)
        assert r.returncode == code, r.stderr
        run = Run(out)
        assert run.status == status
        last = max(run.steps)
        assert last <= 150 and last in run.info["schedule"]
        rows = read_metrics_rows(out / "metrics.csv")
        assert rows[-1][0] >= last                                  # metrics reach the last checkpoint
        if how == "raise":
            assert rows[-1][0] == 150                               # everything logged was kept
        r = run_cli("analyze", out, "--out", tmp_path / f"an-{how}", "--probe", "metrics,fourier", "--quiet",
                    env={"PYTHONPATH": str(ROOT / "tests")})
        assert r.returncode == 0, r.stderr


def test_recorder_usage_errors_are_one_line(tmp_path):
    class NeedsArgs(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.w = nn.Linear(width, 2)

    with pytest.raises(UsageError, match="model_factory"):
        Recorder(tmp_path / "a", NeedsArgs(3), task="modular", steps=10)
    with pytest.raises(UsageError, match="no module 'nope'"):
        Recorder(tmp_path / "b", Plain(), task="modular", steps=10, hooks="embed=nope")
    rec = Recorder(tmp_path / "c", Plain(), task={"name": "modular", "p": 11}, steps=10)
    with pytest.raises(UsageError, match="unknown metric 'acc'"):
        rec.log(0, acc=1.0)
    rec.log(5, train_loss=1.0)
    with pytest.raises(UsageError, match="log steps in order"):
        rec.log(4, train_loss=1.0)
    rec.log(5, test_loss=2.0)                                       # the same step again: merged
    assert rec.writer.rows[-1][1] == 1.0 and rec.writer.rows[-1][3] == 2.0
    rec.finish()
    with pytest.raises(UsageError, match="holds"):
        Recorder(tmp_path / "c", Plain(), task={"name": "modular", "p": 11}, steps=10)
    with pytest.raises(UsageError, match="outside the task"):
        Recorder(tmp_path / "d", Plain(), task={"name": "modular", "p": 11}, steps=10, train_indices=[0, 500])


def test_user_split_is_stored_and_used(tmp_path):
    rec = Recorder(tmp_path / "s", Plain(), task={"name": "modular", "p": 11}, steps=5, train_indices=range(0, 121, 2))
    assert rec.task.train_indices.tolist() == list(range(0, 121, 2))
    rec.checkpoint(0)
    run = rec.finish()
    assert run.task.test_indices.tolist() == list(range(1, 121, 2))


# ------------------------------------------------------------------ plain models under the probes

def test_adapted_model_exposes_hooks_weights_and_its_own_state_dict():
    torch.manual_seed(0)
    inner = Plain()
    model = Adapted(inner, HOOKS)
    x = torch.tensor([[1, 2, 11], [3, 4, 11]])
    logits, cache = model.run_with_cache(x)
    torch.testing.assert_close(logits, inner(x))
    seen = {}
    handle = inner.body[1].register_forward_hook(lambda m, a, out: seen.setdefault("post", out))
    inner(x)
    handle.remove()
    torch.testing.assert_close(cache["blocks.0.mlp.hook_post"], seen["post"])
    torch.testing.assert_close(cache["hook_embed"], inner.emb(x[:, :2]))
    assert model.embed.W_E is inner.emb.weight and torch.equal(model.unembed.W_U, inner.out.weight.T)
    assert model.state_dict().keys() == inner.state_dict().keys()
    # a patching hook changes the output through the HookPoint
    patched = model.run_with_hooks(x, fwd_hooks=[("blocks.0.mlp.hook_post", lambda act, hook: act * 0)])
    torch.testing.assert_close(patched, inner.out.bias.expand(2, -1))
    assert parse_hooks(" embed = emb , ") == {"embed": "emb"}
    with pytest.raises(UsageError, match="neither embed"):
        parse_hooks("mlp=body")


def test_a_probe_a_plain_model_cannot_feed_says_what_to_map(tmp_path):
    """With no names mapped, the probes that need parts of the model are skipped with a line that
    says what to map; the ones that need only outputs and parameters run on any module."""
    import numpy as np

    from grokscope.tables import write_table

    rec, model = record(tmp_path / "r", steps=20, hooks="")
    rec.finish()
    norm = float(torch.linalg.vector_norm(torch.cat([p.detach().flatten() for p in model.parameters()])))
    write_table(tmp_path / "ls" / "landscape.csv", {
        "scale": np.array([0.5, 1.0, 2.0]), "norm": np.array([0.5, 1.0, 2.0]) * norm,
        "best_train_loss": np.array([1.0, 0.1, 0.01]), "best_test_loss": np.array([2.0, 0.5, 3.0])})
    tables = grokscope.analyze(tmp_path / "r", probes=["metrics", "weights", "fourier", "cka", "ntk_spectrum",
                                                       "ntk_alignment", "landscape", "patching"],
                               params={"landscape": {"dir": str(tmp_path / "ls")}}, out=tmp_path / "an",
                               progress=False, report=False)
    probes = json.loads((tmp_path / "an" / "manifest.json").read_text())["probes"]
    assert probes["fourier"]["status"] == "skipped" and "model.hooks=\"embed=" in probes["fourier"]["reason"]
    assert probes["cka"]["status"] == "skipped" and "named activations" in probes["cka"]["reason"]
    assert probes["patching"]["status"] == "skipped"
    assert {"metrics", "weights", "ntk_spectrum", "ntk_alignment", "landscape"} <= set(tables)
    assert tables["landscape"]["norm_scale"][-1] == pytest.approx(1.0, rel=1e-4)   # the last checkpoint is the model


def test_a_loop_that_logs_only_nan_test_losses_gets_them_measured_or_kept(tmp_path):
    """No test loss logged (NaN at every step): `finish` measures every checkpoint's losses from its
    weights (the measured rows agree with the model), or, with measure_missing=False, keeps NaN and
    the run still reads back."""
    rec, model = record(tmp_path / "m", steps=6, test_loss=float("nan"))
    run = rec.finish()
    rows = read_metrics_rows(tmp_path / "m" / "metrics.csv")
    assert [r[0] for r in rows] == run.steps and all(math.isfinite(r[3]) for r in rows)
    last = run.model(6)
    want = nn.functional.cross_entropy(last(run.task.test_inputs), run.task.test_labels)
    assert rows[-1][3] == pytest.approx(float(want.detach()), rel=1e-5)
    rec, _ = record(tmp_path / "k", steps=6, test_loss=float("nan"))
    kept = rec.finish(measure_missing=False)
    rows = read_metrics_rows(tmp_path / "k" / "metrics.csv")
    assert len(rows) == 7 and all(math.isnan(r[3]) for r in rows) and all(math.isfinite(r[1]) for r in rows)
    assert all(math.isnan(v) for v in kept.metrics["test_loss"]) and kept.info["generalization_step"] is None

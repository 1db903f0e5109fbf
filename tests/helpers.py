"""Helpers shared by the tests: tiny configs, the CLI in a subprocess, stacked-training interrupts."""

import dataclasses
import signal
import sys
from pathlib import Path

from grokscope.config import (
    CheckpointConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TaskConfig,
    TrainConfig,
    load_preset,
    with_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def tiny_config(**sections) -> RunConfig:
    """p = 13, width 16: memorizes in tens of steps, trains in well under a second."""
    base = RunConfig(
        name="tiny",
        task=TaskConfig(op="add", p=13, frac_train=0.5),
        model=ModelConfig(d_model=16, n_heads=2, d_head=8, d_mlp=32, hidden=(32,)),
        optim=OptimConfig(lr=1e-2, weight_decay=1.0, warmup_steps=0),
        train=TrainConfig(steps=60, seed=0),
        checkpoint=CheckpointConfig(dense_until=10, log_points=5, every=20, resume_seconds=0.0),
    )
    return dataclasses.replace(base, **{k: dataclasses.replace(getattr(base, k), **v)
                                        for k, v in sections.items()})


def run_cli(*args, cwd=None, timeout=300, env=None):
    """The `grokscope` command in a fresh process (what a user runs; ~5 s of imports); `env`
    adds to the environment."""
    import os
    import subprocess

    return subprocess.run([sys.executable, "-m", "grokscope.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **env} if env else None)


def cli(*args, cwd=None):
    """The `grokscope` command in this process: the same parsing, output and exit codes as
    `run_cli` without the start-up; an exception that would print a traceback is raised."""
    import contextlib
    import io
    import os
    import subprocess

    from grokscope.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def toy(steps=30, **sets) -> RunConfig:
    """liu-toy, short, with a sparse schedule and a resume state at every checkpoint."""
    items = [f"train.steps={steps}", "checkpoint.every=10", "checkpoint.dense_until=2",
             "checkpoint.log_points=3", "checkpoint.resume_seconds=0"]
    return with_overrides(load_preset("liu-toy"), items + [f"{k}={v}" for k, v in sets.items()])


def interrupt_stacked_at(monkeypatch, step: int):
    """Make stacked training get a SIGINT right after update `step`; returns the undo."""
    from grokscope.training.stacked import StackedStepper

    update = StackedStepper.apply_update

    def interrupting(self, grads, factor):
        update(self, grads, factor)
        if self.opt_steps == step:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(StackedStepper, "apply_update", interrupting)
    return lambda: monkeypatch.setattr(StackedStepper, "apply_update", update)


def kumar_config(*extra) -> RunConfig:
    """Kumar et al.'s committee machine on the polynomial task, shrunk to D = 12, 16 units."""
    return with_overrides(load_preset("kumar"), ["task.d_input=12", "task.n_train=40", "task.n_test=30",
                                                 "model.hidden=16", "optim.lr=16", "train.steps=50", *extra])


TEACHER_STUDENT_FAST = ["train.steps=300", "train.log_every=5"]  # a teacher-student run in seconds

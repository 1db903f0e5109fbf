"""The training loop: a RunConfig in, a run directory out (DESIGN.md, "Contract: run directory").

Step s means "the weights after s updates". At iteration s the loop evaluates those weights (the
training forward pass gives the train loss and accuracy; the test set is evaluated without
gradients), logs a metrics row for step s, writes the checkpoint of step s when the schedule says
so, and then makes update s + 1. Rows and checkpoints therefore run from step 0 (the
initialisation) to step `train.steps`.

`run_loop` is that skeleton, written once (what a run starts from is `training.state`). What varies is a `Stepper`: `PlainStepper` (here)
trains one model with a torch optimizer; `training.stacked.StackedStepper` trains a group of
models stacked along a leading axis. Both write through `store.RunWriter`.

Resume: the state at the top of an iteration (weights, optimizer, batch RNG, Grokfast filter) is
written to the run's resume state; continuing from it reproduces the uninterrupted run bit for
bit, because nothing else feeds the computation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from grokscope.config import RunConfig
from grokscope.console import ProgressLine, format_duration
from grokscope.devices import flush_denormals, keep_freed_memory
from grokscope.errors import DiskFullError, GrokscopeError, UsageError
from grokscope.files import atomic_write_json, directory_bytes, format_bytes
from grokscope.measures.losses import embed_penalty, loss_and_accuracy
from grokscope.measures.transitions import (
    GENERALIZED,
    LOSS_FRACTION,
    TOLERANCE,
    transition_rules,
    transition_steps,
)
from grokscope.store import Run, run_status, stored_config
from grokscope.tasks import task_targets
from grokscope.training import graphed
from grokscope.training.optim import lr_at
from grokscope.training.schedule import checkpoint_schedule
from grokscope.training.state import (
    DTYPES,
    RunState,
    check_reusable,
    default_out,
    project_to_norm,
    setup_run,
    weight_norm,
)


class TrainingInterrupted(GrokscopeError):
    exit_code = 130


class TrainingDiverged(GrokscopeError):
    """The loss (or the weights) stopped being finite; the run's status is `diverged`."""


# ---------------------------------------------------------------- the loop skeleton

class Stepper(Protocol):
    """What varies between trainers. At step s: `forward` makes the training forward pass,
    `log` evaluates and appends one metrics row per run, `checkpoint` saves the weights,
    `update` makes update s + 1, `flush` writes every run's metrics and resume state."""

    config: RunConfig
    runs: list[RunState]
    step: int
    resume_hint: str

    def active(self) -> list[RunState]: ...          # the runs that have not diverged
    def non_finite(self) -> list[RunState]: ...      # active runs whose training loss is not finite
    def settle_due(self) -> bool: ...                # rows kept on the device are due to be read
    def settle(self) -> list[tuple[RunState, int]]: ...  # read them now; (run, step) of a non-finite one
    def forward(self) -> None: ...
    def log(self, lr: float) -> str: ...
    def checkpoint(self) -> None: ...
    def update(self, lr: float) -> None: ...
    def flush(self) -> None: ...


def early_stop_due(stepper, generalized: dict, step: int, scanned: dict | None = None) -> bool:
    """`train.stop_after`: true once every live run generalized (`transitions.transition_steps`'
    rule, checked on every metrics row once, in `scanned` order: rows read from a device in
    batches are checked row by row too) at least `stop_after` steps ago."""
    scanned = {} if scanned is None else scanned
    for st in stepper.runs:
        key = id(st)
        if st.diverged_at is None and generalized[key] is None and st.writer.rows:
            rows = st.writer.rows
            start = min(scanned.get(key, len(rows) - 1), len(rows) - 1)
            for i in range(start, len(rows)):
                generalized[key] = first_generalized(rows, i)
                if generalized[key] is not None:
                    break
            scanned[key] = len(rows)
    live = [generalized[id(st)] for st in stepper.runs if st.diverged_at is None]
    return bool(live) and all(g is not None and step >= g + stepper.config.train.stop_after for g in live)


def first_generalized(rows: list[tuple], i: int = -1) -> int | None:
    """The generalization step if metrics row `i` (step, train loss, train acc, test loss, test
    acc, ...; default the last) meets the rule, else None: test accuracy >= 99%, or for regression
    the test loss at 10% of its first value."""
    step, test_loss, test_acc = rows[i][0], rows[i][3], rows[i][4]
    if test_acc == test_acc:  # not NaN: a classifier
        return step if test_acc >= GENERALIZED - TOLERANCE else None
    first = rows[0][3]
    return step if first == first and test_loss <= LOSS_FRACTION * first + TOLERANCE else None


def resume_due(at_checkpoint: bool, since_last: float, resume_seconds: float) -> bool:
    """Write the resume state at a checkpoint step once `resume_seconds` have passed, or at any
    step once they have passed twice over (sparse schedules leave long gaps between checkpoints);
    resume_seconds = 0 writes it at every checkpoint step."""
    if resume_seconds <= 0:
        return at_checkpoint
    return since_last >= (resume_seconds if at_checkpoint else 2 * resume_seconds)


def run_loop(stepper: Stepper, *, progress: bool = True, label: str = "step",
             adaptive_flush: bool = False, status_file: Path | None = None,
             on_flush: Callable[[], None] | None = None, suffix: Callable[[], str] | None = None) -> list[Run]:
    """Train from `stepper.step` to `train.steps`; Ctrl-C or SIGTERM saves the resume state and
    raises TrainingInterrupted. `adaptive_flush` keeps flushing (which writes every run of a
    stacked group) under ~5% of the time. `status_file` receives {"step", "steps"} every few
    seconds (how a sweep shows progress inside a stacked group). `on_flush` is called after
    each resume-state flush (experiment tracking sends the new metric rows then). `suffix()` is
    added to the progress line (a live analysis's newest headlines)."""
    config = stepper.config
    t = config.train
    to_checkpoint = set(checkpoint_schedule(t.steps, config.checkpoint))
    interrupted, handlers = catch_interrupts()
    bar = ProgressLine(t.steps, start=stepper.step, enabled=progress, label=label)
    gen_steps = {id(st): transition_steps(st.writer.metrics())[1] for st in stepper.runs}
    scanned = {id(st): len(st.writer.rows) for st in stepper.runs}  # rows before this segment: in gen_steps
    stopped_early = None

    def settled() -> bool:
        """Read the rows a device stepper keeps (one host synchronization); a non-finite one
        marks its run diverged. False once no run is left."""
        for st, step in stepper.settle():
            mark_diverged(st, config, step)
        return bool(stepper.active())

    last_resume = last_status = time.perf_counter()
    flush_seconds = io_seconds = 0.0
    t_start = time.perf_counter()
    try:
        for s in range(stepper.step, t.steps + 1):
            stepper.step = s
            if interrupted:
                settled()
                save_interrupted(stepper, on_flush)
            budget = (max(config.checkpoint.resume_seconds, 20 * flush_seconds) if adaptive_flush
                      else config.checkpoint.resume_seconds)
            if s > 0 and resume_due(s in to_checkpoint, time.perf_counter() - last_resume, budget):
                if not settled():
                    break
                t_io = time.perf_counter()
                stepper.flush()
                last_resume = time.perf_counter()
                flush_seconds = last_resume - t_io
                io_seconds += flush_seconds
                if on_flush is not None:
                    on_flush()
            stepper.forward()
            lr = lr_at(config, s)
            diverged = stepper.non_finite()
            if s % t.log_every == 0 or s == t.steps or diverged:
                text = stepper.log(lr)
                bar.update(s, text + (" " + suffix() if suffix is not None and bar.due() else ""))
                if status_file is not None and time.perf_counter() - last_status > 2.0:
                    atomic_write_json(status_file, {"step": s, "steps": t.steps})
                    last_status = time.perf_counter()
            for st in diverged:
                mark_diverged(st, config, s)
            if not stepper.active():
                break
            stop = t.stop_after > 0 and s % t.log_every == 0 and early_stop_due(stepper, gen_steps, s, scanned)
            if (s in to_checkpoint or stop or s == t.steps or stepper.settle_due()) and not settled():
                break  # (a checkpoint never holds the weights after a non-finite step)
            if s in to_checkpoint or stop:
                t_io = time.perf_counter()
                stepper.checkpoint()
                io_seconds += time.perf_counter() - t_io
            if stop:
                stopped_early = s
                break
            if s == t.steps:
                break
            stepper.update(lr)
    except DiskFullError as e:
        raise disk_full(stepper, e) from None
    finally:
        bar.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return finish(stepper, stopped_early, time.perf_counter() - t_start, io_seconds, progress)


def save_interrupted(stepper: Stepper, on_flush: Callable[[], None] | None) -> None:
    """Ctrl-C or SIGTERM: the resume state at this step, every run marked interrupted, and the
    one-line TrainingInterrupted that says how to continue."""
    stepper.flush()
    if on_flush is not None:
        on_flush()
    for st in stepper.runs:
        st.writer.set_status(st.info, "interrupted")
    raise TrainingInterrupted(f"interrupted at step {stepper.step:,}; {stepper.resume_hint}")


def catch_interrupts() -> tuple[list[int], dict]:
    """SIGINT and SIGTERM append to the returned list (the loop saves and stops at its next step)
    instead of raising; the previous handlers, to restore. Only the main thread can set them."""
    interrupted: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda signum, frame: interrupted.append(signum))
    return interrupted, handlers


def finish(stepper: Stepper, stopped_early: int | None, elapsed: float, io_seconds: float,
           progress: bool) -> list[Run]:
    """After the last step: the last resume state, then each run marked complete with its
    transition steps and times (or left diverged); the summary line per run."""
    t = stepper.config.train
    if not stepper.active():
        if len(stepper.runs) == 1:
            raise TrainingDiverged(stepper.runs[0].info["divergence"])
        return [Run(st.writer.path) for st in stepper.runs]
    stepper.step = stopped_early if stopped_early is not None else t.steps
    try:
        stepper.flush()
    except DiskFullError as e:
        raise disk_full(stepper, e) from None
    runs = []
    group = {"group_seconds": round(elapsed, 3)} if len(stepper.runs) > 1 else {}
    for st in stepper.runs:
        st.writer.drop_previous_resume_state()  # only an unfinished run needs it
        if st.diverged_at is not None:
            runs.append(Run(st.writer.path))
            continue
        memorized, generalized = transition_steps(st.writer.metrics())
        early = {"stopped_early_at": stopped_early} if stopped_early is not None else {}
        try:   # a disk full at the last write: the resume state at the last step finishes it
            st.writer.set_status(st.info, "complete", memorization_step=memorized,
                                 generalization_step=generalized, **early,
                                 train_seconds=st.train_seconds(elapsed),
                                 io_seconds=round(io_seconds / len(stepper.runs), 3), **group)
        except DiskFullError as e:
            raise disk_full(stepper, e) from None
        if progress:
            print(summary_line(st.writer.path, memorized, generalized, elapsed, st.task.is_regression),
                  file=sys.stderr)
        runs.append(Run(st.writer.path))
    return runs


def disk_full(stepper: Stepper, error: DiskFullError) -> DiskFullError:
    """One line: what filled, how much the run still needs, how to continue; status interrupted
    where run.json can still be written (nothing written before is lost: every write is atomic)."""
    need = 0
    for st in stepper.active():
        need += max(st.info.get("disk_estimate_bytes", 0) - directory_bytes(st.writer.path), 0)
        try:
            st.writer.set_status(st.info, "interrupted")
        except (DiskFullError, OSError):
            pass
    return DiskFullError(f"{error}; the run needs about {format_bytes(need)} more: free space, then "
                         f"{stepper.resume_hint}")


def mark_diverged(st: RunState, config: RunConfig, step: int) -> None:
    """Stop a run whose loss is no longer finite: its metric rows (the last one showing the
    non-finite values) are written, the resume state and checkpoints keep the last finite
    weights, and run.json says `diverged` with the step and the likely cause."""
    st.diverged_at = step
    row = st.writer.rows[-1] if st.writer.rows and st.writer.rows[-1][0] == step else None
    loss = f"train loss {row[1]:g}" if row is not None else "the training loss is not finite"
    cause = (f"lower optim.lr (now {config.optim.lr:g})"
             + (f" or model.init_scale (now {config.model.init_scale:g})" if config.model.init_scale != 1 else
                " or the initialization scale (model.init_scale)"))
    message = f"{st.writer.path}: diverged at step {step:,} ({loss}); {cause} and train again"
    st.writer.write_metrics()
    st.writer.set_status(st.info, "diverged", diverged_at_step=step, divergence=message)


def summary_line(out: Path, memorized: int | None, generalized: int | None, elapsed: float,
                 regression: bool = False) -> str:
    mem = f"memorized at step {memorized:,}" if memorized is not None else "never memorized"
    gen = (f"generalized at step {generalized:,}" if generalized is not None
           else "did not generalize")
    delay = (f" ({generalized - memorized:,} steps later)"
             if memorized is not None and generalized is not None else "")
    rule_m, rule_g = transition_rules(regression)
    return f"{out}: {mem} ({rule_m}), {gen} ({rule_g}){delay}; {format_duration(elapsed)} wall"


# ---------------------------------------------------------------- one model, a torch optimizer

class PlainStepper:
    """One run: a torch module, a torch optimizer, full or minibatch, Grokfast, fixed norm.

    On the CPU each step's metrics row is read as it is logged. On another device (CUDA) reading
    a value waits for the device to finish, and four reads a step (plus the loss's finiteness)
    cost more than a small model's step: there the rows stay on the device and are read in one
    batch at checkpoints, flushes, the end, and every SETTLE_ROWS rows (`settle`). A non-finite
    training loss is then found at that read; the run's rows end at the first non-finite one,
    and no checkpoint or resume state is written after it, as on the CPU."""

    SETTLE_ROWS = 256

    def __init__(self, config: RunConfig, st: RunState, device: str):
        self.config, self.runs, self.device = config, [st], device
        self.st, self.step = st, st.step
        self.resume_hint = f"continue with `grokscope train --resume {st.writer.path}`"
        t, task = config.train, st.task
        self.dtype = DTYPES[t.loss_dtype]
        self.params = st.params
        self.train_x, self.train_y = task.train_inputs.to(device), task.train_labels.to(device)
        self.test_x, self.test_y = task.test_inputs.to(device), task.test_labels.to(device)
        targets = task_targets(task)
        self.targets = targets.to(device) if targets is not None else None
        n_train = self.train_x.shape[0]
        self.full_batch = t.batch_size == 0 or t.batch_size >= n_train
        self.deferred = torch.device(device).type != "cpu"
        self.parts = None  # the captured step (training.graphed) on CUDA, chosen at the first forward
        self.parts_chosen = False
        self.pending: list[tuple[int, torch.Tensor, float]] = []
        self.last_text = ""

    def active(self) -> list[RunState]:
        return [self.st] if self.st.diverged_at is None else []

    def non_finite(self) -> list[RunState]:
        if self.deferred:
            return []  # found by `settle`
        return [] if torch.isfinite(self.loss) else [self.st]

    def settle_due(self) -> bool:
        return len(self.pending) >= self.SETTLE_ROWS

    def settle(self) -> list[tuple[RunState, int]]:
        if not self.pending:
            return []
        values = torch.stack([v for _, v, _ in self.pending]).cpu().tolist()
        pending, self.pending = self.pending, []
        for (step, _, lr), (loss, acc, test_loss, test_acc, norm) in zip(pending, values):
            row = (step, loss, acc, test_loss, test_acc, norm, lr)
            self.st.writer.append(row)
            self.last_text = progress_text(row)
            if not math.isfinite(loss):
                return [(self.st, step)]
        return []

    def forward(self) -> None:
        if not self.parts_chosen:
            self.parts, self.parts_chosen = graphed.step_parts_for(self), True
        if self.parts is not None:
            self.parts.train()
            self.loss, self.acc = self.parts.loss, self.parts.acc
            return
        st, t = self.st, self.config.train
        st.model.train()
        if self.full_batch:
            xb, yb = self.train_x, self.train_y
        else:
            idx = torch.randperm(self.train_x.shape[0], generator=st.batch_rng)[: t.batch_size].to(self.device)
            xb, yb = self.train_x[idx], self.train_y[idx]
        self.loss, self.acc = loss_and_accuracy(st.model(xb), yb, t.loss, self.dtype, self.targets)
        if t.embed_l1:
            self.loss = self.loss + embed_penalty(st.model.embed.W_E, t.embed_l1, self.dtype)

    def log(self, lr: float) -> str:
        st, t = self.st, self.config.train
        if self.parts is not None:
            self.parts.evaluate()
            self.pending.append((self.step, self.parts.row.clone(), lr if self.step < t.steps else 0.0))
            return self.last_text
        st.model.eval()
        with torch.no_grad():
            test_loss, test_acc = loss_and_accuracy(st.model(self.test_x), self.test_y, t.loss,
                                                    self.dtype, self.targets)
        last_lr = lr if self.step < t.steps else 0.0
        if self.deferred:
            row = graphed.metrics_row(self.loss, self.acc, test_loss, test_acc, self.params)
            self.pending.append((self.step, row, last_lr))
            return self.last_text
        row = (self.step, self.loss.item(), self.acc.item(), test_loss.item(), test_acc.item(),
               weight_norm(self.params), last_lr)
        st.writer.append(row)
        return progress_text(row)

    def checkpoint(self) -> None:
        self.st.writer.save_checkpoint(self.step, self.st.model.state_dict(), sync=False)

    def update(self, lr: float) -> None:
        if self.parts is not None:
            self.parts.update(lr)
            return
        st = self.st
        st.optimizer.zero_grad(set_to_none=False)
        self.loss.backward()
        if st.grokfast is not None:
            st.grokfast.apply()
        for group in st.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        st.optimizer.step()
        if st.fixed_norm is not None:
            project_to_norm(self.params, st.fixed_norm)

    def flush(self) -> None:
        self.st.step = self.step
        self.st.flush()


def progress_text(row: tuple) -> str:
    _, train_loss, train_acc, test_loss, test_acc = row[:5]
    if np.isnan(train_acc):
        return f"train loss {train_loss:.3g}  test loss {test_loss:.3g}"
    return f"train {train_loss:.3g}/{train_acc:.0%}  test {test_loss:.3g}/{test_acc:.0%}"


def train(config: RunConfig, out: str | os.PathLike | None = None, *, resume: bool = False,
          progress: bool = True, device: str = "cpu", log: str = "none",
          fork: tuple[str | os.PathLike, int] | None = None, suffix: Callable[[], str] | None = None) -> Run:
    """Train `config` into the run directory `out` (default `checkpoints/<name>`); returns the Run.

    With `resume=True`, `out` must hold a run; training continues from its resume state with
    the stored config. `fork=(parent run directory, step)` trains a branch: from the parent's
    checkpoint at that step, on its split, with a fresh optimizer (`branch` builds its config).
    `log="wandb"` also sends the metrics and config to Weights & Biases, `"tensorboard"` writes
    them as event files (grokscope/tracking.py). `suffix()`: text the progress line adds.
    """
    from grokscope.tracking import check_logger

    check_logger(log)
    out = Path(out) if out is not None else default_out(config)
    if resume:
        config = stored_config(out) or config
        status = run_status(out)
        if status == "complete":
            print(f"{out}: already complete ({config.train.steps:,} steps)", file=sys.stderr)
            return Run(out)
        if status == "diverged":
            raise TrainingDiverged(f"{out} diverged; resuming would diverge again: "
                                   + Run(out).info.get("divergence", "lower optim.lr and train again"))
    process_settings(config, device)
    if fork is not None and not resume:
        fork = (Path(fork[0]), check_fork_step(Path(fork[0]), int(fork[1]), config))
    st = setup_run(config, out, resume=resume, device=device, fork=None if resume else fork)
    if log == "none":
        return run_loop(PlainStepper(config, st, device), progress=progress, suffix=suffix)[0]
    from grokscope.store import METRIC_COLUMNS
    from grokscope.tracking import tracker

    track = tracker(log, out, "train", st.info["config"], steps=config.train.steps)
    try:
        run = run_loop(PlainStepper(config, st, device), progress=progress, suffix=suffix,
                       on_flush=lambda: track.log_rows(st.writer.rows, METRIC_COLUMNS))[0]
        track.summary(memorization_step=run.info.get("memorization_step"),
                      generalization_step=run.info.get("generalization_step"), status=run.status)
        return run
    finally:
        track.log_rows(st.writer.rows, METRIC_COLUMNS, last=True)
        track.finish()


def process_settings(config: RunConfig, device: str) -> None:
    """The whole process's settings, made before the run is built: `train.threads`,
    `train.flush_denormals` (torch's worker threads take the flag when they start) and, on the
    CPU, freed memory kept in the process (without it a `nanda` step faults its activations' pages
    in again every step: `devices.keep_freed_memory`, docs/benchmarks.md)."""
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    cpu = torch.device(device).type == "cpu"
    if cpu:
        keep_freed_memory()
    if config.train.flush_denormals and cpu and not flush_denormals():
        print("train.flush_denormals: some of torch's threads still compute denormal floats (they started "
              "before it was set, or this CPU has no flush mode); in a script, call "
              "torch.set_flush_denormal(True) before any torch computation", file=sys.stderr)


def check_fork_step(parent: Path, step: int, config: RunConfig) -> int:
    """The step a branch starts from: a checkpoint of `parent`, before the branch's last step."""
    run = Run(parent)
    if step not in run.steps:
        near = sorted(run.steps, key=lambda s: abs(s - step))[:5]
        raise UsageError(f"{parent} has no checkpoint at step {step:,}; the nearest are "
                         f"{', '.join(f'{s:,}' for s in sorted(near))} (grokscope info lists them)")
    if step >= config.train.steps:
        raise UsageError(f"the branch would start at step {step:,}, at or after its last step "
                         f"({config.train.steps:,}): raise train.steps")
    return step


def branch(parent: str | os.PathLike, step: int, out: str | os.PathLike, overrides: list[str] = (), *,
           progress: bool = True, device: str = "cpu") -> Run:
    """A branch of `parent` (a run directory): its stored config with `overrides`, trained from its
    checkpoint at `step` (a fresh optimizer) into `out`; resumed when `out` holds it already. What
    `grokscope train --from RUN@STEP` calls."""
    from grokscope.config import with_overrides

    parent = Path(parent)
    stored = stored_config(parent)
    if stored is None:
        raise UsageError(f"{parent} is not a grokscope run (no run.json with a config)")
    config = with_overrides(stored, list(overrides))
    config = dataclasses.replace(config, name=f"{stored.name}-from{step}")
    status = run_status(out)
    if status is not None:
        check_reusable(Path(out), config)
        return train(config, out, resume=True, progress=progress, device=device)
    return train(config, out, progress=progress, device=device, fork=(parent, step))


def ensure_trained(config: RunConfig, out: str | os.PathLike, *, progress: bool = False,
                   device: str = "cpu") -> Run:
    """Make sure `out` holds this run, finished: skip it when it is complete or diverged, resume it
    when it was interrupted, train it otherwise (TrainingDiverged when it diverges now). What
    sweeps, landscapes and benchmarks call."""
    status = run_status(out)
    if status is not None:
        check_reusable(Path(out), config)
    if status in ("complete", "diverged"):
        return Run(out)
    return train(config, out, resume=status is not None, progress=progress, device=device)

"""The training loop: a RunConfig in, a run directory out (DESIGN.md, "Contract: run directory").

Step s means "the weights after s updates". At iteration s the loop evaluates those weights (the
training forward pass gives the train loss and accuracy; the test set is evaluated without
gradients), logs a metrics row for step s, writes the checkpoint of step s when the schedule says
so, and then makes update s + 1. Rows and checkpoints therefore run from step 0 (the
initialisation) to step `train.steps`.

`run_loop` is that skeleton, written once. What varies is a `Stepper`: `PlainStepper` (here)
trains one model with a torch optimizer; `training.stacked.StackedStepper` trains a group of
models stacked along a leading axis. Both write through `store.RunWriter`.

Resume: the state at the top of an iteration (weights, optimizer, batch RNG, Grokfast filter) is
written to the run's resume state; continuing from it reproduces the uninterrupted run bit for
bit, because nothing else feeds the computation.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from grokscope.config import RunConfig
from grokscope.console import Progress, format_duration
from grokscope.errors import DiskFullError, GrokscopeError, UsageError
from grokscope.measures.losses import LOSSES, loss_and_accuracy
from grokscope.measures.transitions import transition_rules, transition_steps
from grokscope.models import build_model
from grokscope.store import (
    Run,
    RunWriter,
    atomic_write_json,
    directory_bytes,
    estimate_run_bytes,
    format_bytes,
    free_bytes,
    run_status,
    stored_config,
)
from grokscope.tasks import build_task, task_targets
from grokscope.training.optim import (
    Grokfast,
    lr_at,
    make_optimizer,
    optimizer_from_tensors,
    optimizer_to_tensors,
)
from grokscope.training.schedule import checkpoint_schedule
from grokscope.version import __version__

DTYPES = {"float32": torch.float32, "float64": torch.float64}
MAX_LR_STEP = 1e37  # torch's AdamW computes 1 - lr * weight_decay in float32: 1e38 overflows


class TrainingInterrupted(GrokscopeError):
    exit_code = 130


class TrainingDiverged(GrokscopeError):
    """The loss (or the weights) stopped being finite; the run's status is `diverged`."""


# ---------------------------------------------------------------- checks and norms

def weight_norm(params: list[Tensor]) -> float:
    with torch.no_grad():
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params))))


def default_init_norm(config: RunConfig, task) -> float:
    """w0: the global parameter norm of this config's model at the default init (init_scale 1)."""
    torch.manual_seed(config.train.seed)
    plain = dataclasses.replace(config, model=dataclasses.replace(config.model, init_scale=1.0))
    return weight_norm([p for p in build_model(plain, task).parameters() if p.requires_grad])


def target_norm(config: RunConfig, task) -> float | None:
    """The global norm `train.fixed_norm` holds the parameters at, or None when it is off."""
    t = config.train
    if t.fixed_norm is None:
        return None
    return t.fixed_norm if t.fixed_norm_absolute else t.fixed_norm * default_init_norm(config, task)


@torch.no_grad()
def project_to_norm(params: list[Tensor], norm: float) -> None:
    """Rescale all parameters together (biases included) to global L2 norm `norm`."""
    current = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)))
    torch._foreach_mul_(params, norm / current)


def default_out(config: RunConfig) -> Path:
    return Path("checkpoints") / config.name


def disk_estimate(config: RunConfig, model: torch.nn.Module) -> int:
    """About how many bytes the run directory of `config` takes when complete."""
    o = config.optim
    copies = {"adamw": 3, "adam": 3}.get(o.name, 2 if o.momentum else 1)
    copies += {"ema": 1, "ma": o.grokfast_window}.get(o.grokfast, 0)
    sizes = [t.numel() for t in model.state_dict().values()]
    n_checkpoints = len(checkpoint_schedule(config.train.steps, config.checkpoint))
    return estimate_run_bytes(sizes, n_checkpoints, config.train.steps // config.train.log_every + 1, copies)


def check_disk(out: Path, needed: int, resume: bool) -> None:
    """Refuse to start a run the disk clearly cannot hold."""
    free = free_bytes(out)
    if needed > free:
        how = f"`grokscope train --resume {out}`" if resume else "the same command"
        raise UsageError(f"{out}: the run needs about {format_bytes(needed)} more on disk and "
                         f"{format_bytes(free)} are free; free space and run {how}, choose another --out, "
                         "or keep fewer checkpoints (checkpoint.every, checkpoint.log_points)")


def check_config(config: RunConfig) -> None:
    t, o = config.train, config.optim
    if t.steps < 1:
        raise UsageError(f"train.steps must be at least 1, got {t.steps}")
    if not (o.lr >= 0 and o.weight_decay >= 0 and o.lr * max(o.weight_decay, 1.0) <= MAX_LR_STEP):
        raise UsageError(f"optim.lr ({o.lr:g}) and optim.weight_decay ({o.weight_decay:g}) must be >= 0 with "
                         f"lr x max(weight_decay, 1) <= {MAX_LR_STEP:g} (torch's optimizers overflow above it)")
    if t.loss not in LOSSES:
        raise UsageError(f"unknown train.loss {t.loss!r}; choose one of {', '.join(LOSSES)}")
    if t.loss_dtype not in DTYPES:
        raise UsageError(f"unknown train.loss_dtype {t.loss_dtype!r}; choose float32 or float64")
    if t.log_every < 1 or t.batch_size < 0:
        raise UsageError("train.log_every must be >= 1 and train.batch_size >= 0 (0: full batch)")
    if config.task.name in ("polynomial", "teacher_student") and t.loss != "mse":
        raise UsageError(f"task.name={config.task.name} is a regression: set train.loss=mse")
    if t.fixed_norm is not None and t.fixed_norm <= 0:
        raise UsageError(f"train.fixed_norm must be > 0 (none turns it off), got {t.fixed_norm}")
    if t.fixed_norm is not None and o.weight_decay != 0:
        raise UsageError("train.fixed_norm holds the weight norm fixed; weight decay would fight it: "
                         "set optim.weight_decay=0")
    if o.embed_lr is not None and o.embed_lr <= 0:
        raise UsageError(f"optim.embed_lr must be > 0 (none: the same as optim.lr), got {o.embed_lr}")
    if o.embed_weight_decay is not None and o.embed_weight_decay < 0:
        raise UsageError("optim.embed_weight_decay must be >= 0 (none: the same as "
                         f"optim.weight_decay), got {o.embed_weight_decay}")
    if t.loss == "target_mse" and not config.task.name.startswith("toy_"):
        raise UsageError("train.loss=target_mse needs a task with target vectors "
                         "(task.name=toy_add or toy_permutation)")
    if o.grokfast not in ("none", "ema", "ma"):
        raise UsageError(f"unknown optim.grokfast {o.grokfast!r}; choose none, ema or ma")


# ---------------------------------------------------------------- one run's state

@dataclass
class RunState:
    """Everything one run carries from one iteration to the next, and where it is written."""

    writer: RunWriter
    task: Any
    info: dict
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch_rng: torch.Generator
    grokfast: Grokfast | None
    step: int = 0
    fixed_norm: float | None = None
    diverged_at: int | None = None

    @property
    def params(self) -> list[Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def resume_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = optimizer_to_tensors(self.optimizer)
        tensors.update(opt_tensors)
        tensors["rng.batch"] = self.batch_rng.get_state()
        if self.grokfast is not None:
            tensors.update(self.grokfast.to_tensors())
        return tensors, {"step": str(self.step), "optimizer": opt_meta}

    def load_resume(self, step: int | None = None) -> None:
        tensors, meta = self.writer.load_resume_state(step)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_tensors(self.optimizer, tensors, meta["optimizer"])
        self.batch_rng.set_state(tensors["rng.batch"])
        if self.grokfast is not None:
            self.grokfast.load_tensors(tensors)
        self.step = int(meta["step"])

    def flush(self) -> None:
        """Metrics, then the resume state (RunWriter.save_resume_state)."""
        self.writer.save_resume_state(*self.resume_tensors())


def setup_run(config: RunConfig, out: Path, *, resume: bool, device: str = "cpu",
              info_extra: dict | None = None) -> RunState:
    """Everything a training loop starts from: the config checked, the task (with the stored split
    when resuming), the model, optimizer and RNG state (loaded from the resume state when there
    is one), the metric rows so far; split and run info written. Nothing is written before the
    config and the output directory have been checked."""
    check_config(config)
    task = build_task(config)  # validates the task before anything is written
    writer = RunWriter(out)
    if not resume:
        writer.check_new(config)
    else:
        task = task.with_split(writer.read_split())
        writer.remove_stale_temp_files()
    fixed = target_norm(config, task)
    torch.manual_seed(config.train.seed)
    model = build_model(config, task).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if fixed is not None:
        project_to_norm(params, fixed)  # start on the sphere too
    o = config.optim
    estimate = disk_estimate(config, model)
    check_disk(out, estimate - (directory_bytes(out) if resume else 0), resume)
    info = {
        "grokscope_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "device": device,
        "config": config.to_dict(), "status": "running",
        "n_params": sum(p.numel() for p in params),
        "schedule": checkpoint_schedule(config.train.steps, config.checkpoint),
        "fixed_norm": fixed, "disk_estimate_bytes": estimate, **(info_extra or {}),
    }
    st = RunState(writer, task, info, model, make_optimizer(config, model),
                  torch.Generator().manual_seed(config.train.seed + 1),
                  Grokfast(o.grokfast, params, o.grokfast_alpha, o.grokfast_lamb, o.grokfast_window)
                  if o.grokfast != "none" else None, fixed_norm=fixed)
    if resume and writer.has_resume_state():
        st.load_resume()
        writer.load_rows(st.step)
        st.info = {**writer.read_info(), "status": "running"}
        writer.write_info(st.info)
    elif resume:
        writer.write_info(info)
    else:
        writer.create(info, task.split_dict(
            "random.Random(seed).shuffle(row-major grid); first int(frac_train * n) are train",
            config.split_seed))
    return st


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
    def forward(self) -> None: ...
    def log(self, lr: float) -> str: ...
    def checkpoint(self) -> None: ...
    def update(self, lr: float) -> None: ...
    def flush(self) -> None: ...


def resume_due(at_checkpoint: bool, since_last: float, resume_seconds: float) -> bool:
    """Write the resume state at a checkpoint step once `resume_seconds` have passed, or at any
    step once they have passed twice over (sparse schedules leave long gaps between checkpoints);
    resume_seconds = 0 writes it at every checkpoint step."""
    if resume_seconds <= 0:
        return at_checkpoint
    return since_last >= (resume_seconds if at_checkpoint else 2 * resume_seconds)


def run_loop(stepper: Stepper, *, progress: bool = True, label: str = "step",
             adaptive_flush: bool = False, status_file: Path | None = None) -> list[Run]:
    """Train from `stepper.step` to `train.steps`; Ctrl-C or SIGTERM saves the resume state and
    raises TrainingInterrupted. `adaptive_flush` keeps flushing (which writes every run of a
    stacked group) under ~5% of the time. `status_file` receives {"step", "steps"} every few
    seconds (how a sweep shows progress inside a stacked group)."""
    config = stepper.config
    t = config.train
    to_checkpoint = set(checkpoint_schedule(t.steps, config.checkpoint))
    interrupted: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda signum, frame: interrupted.append(signum))
    bar = Progress(t.steps, start=stepper.step, enabled=progress, label=label)
    last_resume = last_status = time.perf_counter()
    flush_seconds = io_seconds = 0.0
    t_start = time.perf_counter()
    try:
        for s in range(stepper.step, t.steps + 1):
            stepper.step = s
            if interrupted:
                stepper.flush()
                for st in stepper.runs:
                    st.writer.set_status(st.info, "interrupted")
                raise TrainingInterrupted(f"interrupted at step {s:,}; {stepper.resume_hint}")
            budget = (max(config.checkpoint.resume_seconds, 20 * flush_seconds) if adaptive_flush
                      else config.checkpoint.resume_seconds)
            if s > 0 and resume_due(s in to_checkpoint, time.perf_counter() - last_resume, budget):
                t_io = time.perf_counter()
                stepper.flush()
                last_resume = time.perf_counter()
                flush_seconds = last_resume - t_io
                io_seconds += flush_seconds
            stepper.forward()
            lr = lr_at(config, s)
            diverged = stepper.non_finite()
            if s % t.log_every == 0 or s == t.steps or diverged:
                bar.update(s, stepper.log(lr))
                if status_file is not None and time.perf_counter() - last_status > 2.0:
                    atomic_write_json(status_file, {"step": s, "steps": t.steps})
                    last_status = time.perf_counter()
            for st in diverged:
                mark_diverged(st, config, s)
            if not stepper.active():
                break
            if s in to_checkpoint:
                t_io = time.perf_counter()
                stepper.checkpoint()
                io_seconds += time.perf_counter() - t_io
            if s == t.steps:
                break
            stepper.update(lr)
    except DiskFullError as e:
        raise disk_full(stepper, e) from None
    finally:
        bar.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    elapsed = time.perf_counter() - t_start
    if not stepper.active():
        if len(stepper.runs) == 1:
            raise TrainingDiverged(stepper.runs[0].info["divergence"])
        return [Run(st.writer.path) for st in stepper.runs]
    stepper.step = t.steps
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
        st.writer.set_status(st.info, "complete", memorization_step=memorized,
                             generalization_step=generalized,
                             train_seconds=round(elapsed / len(stepper.runs), 3),
                             io_seconds=round(io_seconds / len(stepper.runs), 3), **group)
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
    """One run: a torch module, a torch optimizer, full or minibatch, Grokfast, fixed norm."""

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

    def active(self) -> list[RunState]:
        return [self.st] if self.st.diverged_at is None else []

    def non_finite(self) -> list[RunState]:
        return [] if torch.isfinite(self.loss) else [self.st]

    def forward(self) -> None:
        st, t = self.st, self.config.train
        st.model.train()
        if self.full_batch:
            xb, yb = self.train_x, self.train_y
        else:
            idx = torch.randperm(self.train_x.shape[0], generator=st.batch_rng)[: t.batch_size].to(self.device)
            xb, yb = self.train_x[idx], self.train_y[idx]
        self.loss, self.acc = loss_and_accuracy(st.model(xb), yb, t.loss, self.dtype, self.targets)

    def log(self, lr: float) -> str:
        st, t = self.st, self.config.train
        st.model.eval()
        with torch.no_grad():
            test_loss, test_acc = loss_and_accuracy(st.model(self.test_x), self.test_y, t.loss,
                                                    self.dtype, self.targets)
        row = (self.step, self.loss.item(), self.acc.item(), test_loss.item(), test_acc.item(),
               weight_norm(self.params), lr if self.step < t.steps else 0.0)
        st.writer.append(row)
        return progress_text(row)

    def checkpoint(self) -> None:
        self.st.writer.save_checkpoint(self.step, self.st.model.state_dict())

    def update(self, lr: float) -> None:
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
          progress: bool = True, device: str = "cpu") -> Run:
    """Train `config` into the run directory `out` (default `checkpoints/<name>`); returns the Run.

    With `resume=True`, `out` must hold a run; training continues from its resume state with
    the stored config.
    """
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
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    st = setup_run(config, out, resume=resume, device=device)
    return run_loop(PlainStepper(config, st, device), progress=progress)[0]


def ensure_trained(config: RunConfig, out: str | os.PathLike, *, progress: bool = False,
                   device: str = "cpu") -> Run:
    """Make sure `out` holds this run, finished: skip it when it is complete or diverged, resume it
    when it was interrupted, train it otherwise (TrainingDiverged when it diverges now). What
    sweeps, landscapes and benchmarks call."""
    status = run_status(out)
    if status in ("complete", "diverged"):
        return Run(out)
    return train(config, out, resume=status is not None, progress=progress, device=device)

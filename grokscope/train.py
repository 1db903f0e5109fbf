"""The training loop: a RunConfig in, a run directory out (DESIGN.md, "Contract: run directory").

Step s means "the weights after s updates". At iteration s the loop evaluates those weights (the
training forward pass gives the train loss and accuracy; the test set is evaluated without
gradients), logs a metrics row for step s, writes the checkpoint of step s when the schedule says
so, and then makes update s + 1. Rows and checkpoints therefore run from step 0 (the
initialisation) to step `train.steps`.

Resume: the state at the top of an iteration (weights, optimizer, batch RNG, Grokfast filter) is
written to `resume/state.safetensors`; continuing from it reproduces the uninterrupted run bit for
bit, because nothing else feeds the computation.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from grokscope import __version__
from grokscope.config import RunConfig
from grokscope.errors import GrokscopeError, UsageError
from grokscope.losses import LOSSES, loss_and_accuracy, task_targets
from grokscope.models import build_model
from grokscope.optim import (Grokfast, lr_at, make_optimizer, optimizer_from_tensors,
                             optimizer_to_tensors)
from grokscope.progress import Progress, format_duration
from grokscope.schedule import checkpoint_schedule
from grokscope.store import (METRIC_COLUMNS, Run, atomic_write_json, atomic_write_text,
                             checkpoint_name, format_metrics, load_tensors, read_json,
                             read_metrics_rows, remove_stale_temp_files, save_tensors, transition_steps,
                             transition_thresholds)
from grokscope.tasks import build_task

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TrainingInterrupted(GrokscopeError):
    exit_code = 130


def weight_norm(params: list[Tensor]) -> float:
    with torch.no_grad():
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params))))


def default_init_norm(config: RunConfig, task) -> float:
    """w0: the global parameter norm of this config's model at the default init (init_scale 1)."""
    import dataclasses

    torch.manual_seed(config.train.seed)
    plain = dataclasses.replace(config, model=dataclasses.replace(config.model, init_scale=1.0))
    return weight_norm([p for p in build_model(plain, task).parameters() if p.requires_grad])


def target_norm(config: RunConfig, task) -> float | None:
    t = config.train
    if t.fixed_norm <= 0:
        return None
    return t.fixed_norm if t.fixed_norm_absolute else t.fixed_norm * default_init_norm(config, task)


@torch.no_grad()
def project_to_norm(params: list[Tensor], norm: float) -> None:
    """Rescale all parameters together (biases included) to global L2 norm `norm`."""
    current = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)))
    torch._foreach_mul_(params, norm / current)


def default_out(config: RunConfig) -> Path:
    return Path("checkpoints") / config.name


def check_config(config: RunConfig) -> None:
    t = config.train
    if t.steps < 1:
        raise UsageError(f"train.steps must be at least 1, got {t.steps}")
    if t.loss not in LOSSES:
        raise UsageError(f"unknown train.loss {t.loss!r}; choose one of {', '.join(LOSSES)}")
    if t.loss_dtype not in DTYPES:
        raise UsageError(f"unknown train.loss_dtype {t.loss_dtype!r}; choose float32 or float64")
    if t.log_every < 1 or t.batch_size < 0:
        raise UsageError("train.log_every must be >= 1 and train.batch_size >= 0 (0: full batch)")
    if config.task.name in ("polynomial", "teacher_student") and t.loss != "mse":
        raise UsageError(f"task.name={config.task.name} is a regression: set train.loss=mse")
    if t.fixed_norm < 0:
        raise UsageError(f"train.fixed_norm must be >= 0 (0 turns it off), got {t.fixed_norm}")
    if t.fixed_norm > 0 and config.optim.weight_decay != 0:
        raise UsageError("train.fixed_norm holds the weight norm fixed; weight decay would fight it: "
                         "set optim.weight_decay=0")
    if t.loss == "target_mse" and not config.task.name.startswith("toy_"):
        raise UsageError("train.loss=target_mse needs a task with target vectors "
                         "(task.name=toy_add or toy_permutation)")
    if config.optim.grokfast not in ("none", "ema", "ma"):
        raise UsageError(f"unknown optim.grokfast {config.optim.grokfast!r}; choose none, ema or ma")


def prepare_out(config: RunConfig, out: Path) -> None:
    """Refuse an output directory that holds anything but nothing."""
    if (out / "run.json").exists():
        info = read_json(out / "run.json")
        if info.get("config") != config.to_dict():
            raise UsageError(f"{out} holds a different run ({info.get('config', {}).get('name')!r}); "
                             "choose another --out or delete that directory")
        if info.get("status") == "complete":
            raise UsageError(f"{out} already holds this run, complete; choose another --out "
                             "to train it again")
        raise UsageError(f"{out} holds an unfinished run of this config; continue it with "
                         f"`grokscope train --resume {out}`")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty and is not a grokscope run; choose another --out")


@dataclass
class _State:
    """Everything the loop carries from one iteration to the next."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch_rng: torch.Generator
    grokfast: Grokfast | None
    step: int = 0
    fixed_norm: float | None = None


def _save_resume(out: Path, st: _State) -> None:
    tensors = {f"model.{k}": v for k, v in st.model.state_dict().items()}
    opt_tensors, opt_meta = optimizer_to_tensors(st.optimizer)
    tensors.update(opt_tensors)
    tensors["rng.batch"] = st.batch_rng.get_state()
    if st.grokfast is not None:
        tensors.update(st.grokfast.to_tensors())
    save_tensors(out / "resume" / "state.safetensors", tensors,
                 {"step": str(st.step), "optimizer": opt_meta})


def _load_resume(out: Path, st: _State) -> None:
    tensors, meta = load_tensors(out / "resume" / "state.safetensors",
                                 hint=f"delete {out / 'resume'} to restart the run from step 0")
    st.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_from_tensors(st.optimizer, tensors, meta["optimizer"])
    st.batch_rng.set_state(tensors["rng.batch"])
    if st.grokfast is not None:
        st.grokfast.load_tensors(tensors)
    st.step = int(meta["step"])


def setup_run(config: RunConfig, out: Path, *, resume: bool, device: str = "cpu",
              info_extra: dict | None = None) -> tuple[Any, _State, list[tuple], dict, list[int]]:
    """Everything a training loop starts from: the config checked, the task (with the stored split
    when resuming), the model, optimizer and RNG state (loaded from the resume state when there
    is one), the metric rows so far; split.json and run.json written. Nothing is written before
    the config and the output directory have been checked."""
    check_config(config)
    task = build_task(config)  # validates the task before anything is written
    if not resume:
        prepare_out(config, out)
    else:
        task = task.with_split(read_json(out / "split.json"))
        remove_stale_temp_files(out)
    fixed = target_norm(config, task)
    torch.manual_seed(config.train.seed)
    model = build_model(config, task).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if fixed is not None:
        project_to_norm(params, fixed)  # start on the sphere too
    o = config.optim
    st = _State(model, make_optimizer(config, model),
                torch.Generator().manual_seed(config.train.seed + 1),
                Grokfast(o.grokfast, params, o.grokfast_alpha, o.grokfast_lamb, o.grokfast_window)
                if o.grokfast != "none" else None, fixed_norm=fixed)
    schedule = checkpoint_schedule(config.train.steps, config.checkpoint)
    info = {
        "grokscope_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "device": device,
        "config": config.to_dict(), "status": "running",
        "n_params": sum(p.numel() for p in params), "schedule": schedule,
        "fixed_norm": fixed, **(info_extra or {}),
    }
    rows: list[tuple] = []
    if resume and (out / "resume" / "state.safetensors").exists():
        _load_resume(out, st)
        rows = [r for r in read_metrics_rows(out / "metrics.csv") if r[0] < st.step]
        info = {**read_json(out / "run.json"), "status": "running"}
    elif not resume:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "split.json", task.split_dict(
            "random.Random(seed).shuffle(row-major grid); first int(frac_train * n) are train",
            config.split_seed))
    atomic_write_json(out / "run.json", info)
    return task, st, rows, info, schedule


def train(config: RunConfig, out: str | os.PathLike | None = None, *, resume: bool = False,
          progress: bool = True, device: str = "cpu") -> Run:
    """Train `config` into the run directory `out` (default `checkpoints/<name>`); returns the Run.

    With `resume=True`, `out` must hold a run; training continues from its resume state.
    """
    out = Path(out) if out is not None else default_out(config)
    if resume:
        info = read_json(out / "run.json")
        config = RunConfig.from_dict(info["config"])
        if info.get("status") == "complete":
            print(f"{out}: already complete ({config.train.steps:,} steps)", file=sys.stderr)
            return Run(out)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    task, st, rows, info, schedule = setup_run(config, out, resume=resume, device=device)
    return _loop(config, out, task, st, rows, info, schedule, progress, device)


def _loop(config: RunConfig, out: Path, task, st: _State, rows: list[tuple], info: dict,
          schedule: list[int], show_progress: bool, device: str) -> Run:
    t = config.train
    dtype = DTYPES[t.loss_dtype]
    model, optimizer = st.model, st.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    train_x, train_y = task.train_inputs.to(device), task.train_labels.to(device)
    test_x, test_y = task.test_inputs.to(device), task.test_labels.to(device)
    targets = task_targets(task)
    targets = targets.to(device) if targets is not None else None
    n_train = train_x.shape[0]
    full_batch = t.batch_size == 0 or t.batch_size >= n_train
    to_checkpoint = set(schedule)
    interrupted: list[int] = []

    def on_signal(signum, frame):
        interrupted.append(signum)

    handlers = {}
    if threading_main():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, on_signal)

    bar = Progress(t.steps, start=st.step, enabled=show_progress)
    last_resume = time.perf_counter()
    io_seconds = 0.0
    t_start = time.perf_counter()
    try:
        for s in range(st.step, t.steps + 1):
            st.step = s
            if interrupted:
                _flush(out, rows, st)
                info["status"] = "interrupted"
                atomic_write_json(out / "run.json", info)
                raise TrainingInterrupted(f"interrupted at step {s:,}; continue with "
                                          f"`grokscope train --resume {out}`")
            if s > 0 and resume_due(s in to_checkpoint, time.perf_counter() - last_resume,
                                    config.checkpoint.resume_seconds):
                t_io = time.perf_counter()
                _flush(out, rows, st)
                io_seconds += time.perf_counter() - t_io
                last_resume = time.perf_counter()

            model.train()
            if full_batch:
                xb, yb = train_x, train_y
            else:
                idx = torch.randperm(n_train, generator=st.batch_rng)[: t.batch_size].to(device)
                xb, yb = train_x[idx], train_y[idx]
            loss, acc = loss_and_accuracy(model(xb), yb, t.loss, dtype, targets)

            lr = lr_at(config, s)
            if s % t.log_every == 0 or s == t.steps:
                model.eval()
                with torch.no_grad():
                    test_loss, test_acc = loss_and_accuracy(model(test_x), test_y, t.loss, dtype, targets)
                rows.append((s, loss.item(), acc.item(), test_loss.item(), test_acc.item(),
                             weight_norm(params), lr if s < t.steps else 0.0))
                bar.update(s, _progress_text(rows[-1]))
            if s in to_checkpoint:
                t_io = time.perf_counter()
                save_tensors(out / "checkpoints" / checkpoint_name(s), model.state_dict(),
                             {"step": str(s), "format": "grokscope"})
                io_seconds += time.perf_counter() - t_io
            if s == t.steps:
                break

            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            if st.grokfast is not None:
                st.grokfast.apply()
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            optimizer.step()
            if st.fixed_norm is not None:
                project_to_norm(params, st.fixed_norm)
    finally:
        bar.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    st.step = t.steps
    _flush(out, rows, st)
    memorized, generalized = transition_steps(dict(zip(METRIC_COLUMNS, map(np.array, zip(*rows)))))
    elapsed = time.perf_counter() - t_start
    info.update(status="complete", memorization_step=memorized, generalization_step=generalized,
                train_seconds=round(elapsed, 3), io_seconds=round(io_seconds, 3))
    atomic_write_json(out / "run.json", info)
    if show_progress:
        print(summary_line(out, memorized, generalized, elapsed, task.is_regression), file=sys.stderr)
    return Run(out)


def resume_due(at_checkpoint: bool, since_last: float, resume_seconds: float) -> bool:
    """Write the resume state at a checkpoint step once `resume_seconds` have passed, or at any
    step once they have passed twice over (sparse schedules leave long gaps between checkpoints);
    resume_seconds = 0 writes it at every checkpoint step."""
    if resume_seconds <= 0:
        return at_checkpoint
    return since_last >= (resume_seconds if at_checkpoint else 2 * resume_seconds)


def _progress_text(row: tuple) -> str:
    _, train_loss, train_acc, test_loss, test_acc = row[:5]
    if np.isnan(train_acc):
        return f"train loss {train_loss:.3g}  test loss {test_loss:.3g}"
    return f"train {train_loss:.3g}/{train_acc:.0%}  test {test_loss:.3g}/{test_acc:.0%}"


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _flush(out: Path, rows: list[tuple], st: _State) -> None:
    """Metrics first, then the resume state: a crash between the two only leaves extra rows,
    which resuming drops."""
    atomic_write_text(out / "metrics.csv", format_metrics(rows))
    _save_resume(out, st)


def summary_line(out: Path, memorized: int | None, generalized: int | None, elapsed: float,
                 regression: bool = False) -> str:
    mem = f"memorized at step {memorized:,}" if memorized is not None else "never memorized"
    gen = (f"generalized at step {generalized:,}" if generalized is not None
           else "did not generalize")
    delay = (f" ({generalized - memorized:,} steps later)"
             if memorized is not None and generalized is not None else "")
    rule_m, rule_g = transition_thresholds(regression)
    return f"{out}: {mem} ({rule_m}), {gen} ({rule_g}){delay}; {format_duration(elapsed)} wall"

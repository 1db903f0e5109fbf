"""What a run starts from: the config checked, the disk checked, the task, the model, the
optimizer, RNG and filter state (fresh or from the resume state), and the run directory created;
`RunState` carries it from one iteration to the next (`training.loop` iterates)."""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from grokscope.config import RunConfig
from grokscope.errors import UsageError
from grokscope.files import directory_bytes, format_bytes, free_bytes
from grokscope.measures.losses import DTYPES, LOSSES  # DTYPES: the trainers import it from here
from grokscope.models import build_model
from grokscope.store import Run, RunWriter, estimate_run_bytes
from grokscope.tasks import build_task, describe_task
from grokscope.training.optim import Grokfast, make_optimizer, optimizer_from_tensors, optimizer_to_tensors
from grokscope.training.schedule import checkpoint_schedule
from grokscope.version import __version__

# What training computes from a config, as a number: bump it with any change that makes the same
# config train to other numbers (an initialization, a loss, an optimizer detail). run.json records
# it, and a run directory is reused (sweeps, landscapes, reproductions) only at the same config
# and the same training version (`check_reusable`).
TRAINING_VERSION = 1
MAX_LR_STEP = 1e37  # torch's AdamW computes 1 - lr * weight_decay in float32: 1e38 overflows


# ---------------------------------------------------------------- checks and norms

def weight_norm(params: list[Tensor]) -> float:
    return float(weight_norm_tensor(params))


def weight_norm_tensor(params: list[Tensor]) -> Tensor:
    """The global L2 norm of `params`, on their device (no host read)."""
    with torch.no_grad():
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)))


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
    if config.model.init not in ("fan_in", "unit", "torch"):
        raise UsageError(f"unknown model.init {config.model.init!r}; choose fan_in, unit or torch")
    if t.loss not in LOSSES:
        raise UsageError(f"unknown train.loss {t.loss!r}; choose one of {', '.join(LOSSES)}")
    if t.loss_dtype not in DTYPES:
        raise UsageError(f"unknown train.loss_dtype {t.loss_dtype!r}; choose float32 or float64")
    if t.stop_after < 0:
        raise UsageError(f"train.stop_after must be >= 0 (0: off), got {t.stop_after}")
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
    if t.embed_l1 < 0:
        raise UsageError(f"train.embed_l1 must be >= 0 (0: off), got {t.embed_l1}")
    if t.embed_l1 and config.model.name != "toy":
        raise UsageError("train.embed_l1 penalizes the toy model's embedding (Liu et al.'s S3 notebook): "
                         "use model.name=toy or set train.embed_l1=0")
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
    # training time: the earlier segments' (from run.json, when resumed) and this one's, of which a
    # stacked group's run counts its share
    seconds_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    share: int = 1

    def train_seconds(self, elapsed: float | None = None) -> float:
        """Seconds of training over every segment of the run: this segment's `elapsed` (or the
        time since it started) divided among its group, plus the earlier segments'."""
        elapsed = time.perf_counter() - self.started if elapsed is None else elapsed
        return round(self.seconds_before + elapsed / self.share, 3)

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
        """Metrics, then the resume state (RunWriter.save_resume_state), then the training time so
        far in run.json (a killed run resumes counting from there; the time after its last resume
        state is redone, and counted again)."""
        self.writer.save_resume_state(*self.resume_tensors())
        self.info["train_seconds"] = self.train_seconds()
        self.writer.write_info(self.info)


def setup_run(config: RunConfig, out: Path, *, resume: bool, device: str = "cpu",
              info_extra: dict | None = None, fork: tuple[Path, int] | None = None) -> RunState:
    """Everything a training loop starts from: the config checked, the task (with the stored split
    when resuming), the model, optimizer and RNG state (loaded from the resume state when there
    is one), the metric rows so far; split and run info written. Nothing is written before the
    config and the output directory have been checked.

    `fork` = (parent run directory, step): a branch, starting from the parent's checkpoint at that
    step on the parent's split, with a fresh optimizer (checkpoints hold weights only), counting
    steps from there; run.json records `parent` and `fork_step`."""
    check_config(config)
    task = build_task(config)  # validates the task before anything is written
    writer = RunWriter(out)
    parent = None
    if not resume:
        writer.check_new(config)
        if fork is not None:
            parent = Run(fork[0])
            task = task.with_split(RunWriter(parent.path).read_split())
    else:
        task = task.with_split(writer.read_split())
        writer.remove_stale_temp_files()
    fixed = target_norm(config, task)
    torch.manual_seed(config.train.seed)
    model = build_model(config, task).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if parent is not None:
        model.load_state_dict(parent.state_dict(fork[1]))
    if fixed is not None:
        project_to_norm(params, fixed)  # start on the sphere too
    o = config.optim
    estimate = disk_estimate(config, model)
    check_disk(out, estimate - (directory_bytes(out) if resume else 0), resume)
    info = {
        "grokscope_version": __version__, "training_version": TRAINING_VERSION, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "device": device,
        "config": config.to_dict(), "task_description": describe_task(config), "status": "running",
        "n_params": sum(p.numel() for p in params),
        "schedule": checkpoint_schedule(config.train.steps, config.checkpoint),
        "fixed_norm": fixed, "disk_estimate_bytes": estimate, **(info_extra or {}),
    }
    if parent is not None:
        info.update(parent=str(parent.path.resolve()), fork_step=int(fork[1]))
    st = RunState(writer, task, info, model, make_optimizer(config, model),
                  torch.Generator().manual_seed(config.train.seed + 1),
                  Grokfast(o.grokfast, params, o.grokfast_alpha, o.grokfast_lamb, o.grokfast_window)
                  if o.grokfast != "none" else None, fixed_norm=fixed)
    if resume and writer.has_resume_state():
        st.load_resume()
        writer.load_rows(st.step)
        st.info = {**writer.read_info(), "status": "running"}
        st.seconds_before = float(st.info.get("train_seconds") or 0.0)
        writer.write_info(st.info)
    elif resume:
        writer.write_info(info)
    else:
        rule = ("the parent run's split" if parent is not None else
                "random.Random(seed).shuffle(row-major grid); first int(frac_train * n) are train")
        writer.create(info, task.split_dict(rule, config.split_seed))
        st.step = int(fork[1]) if parent is not None else 0
    return st


def check_reusable(path: Path, config: RunConfig) -> None:
    """A run directory that already holds a run (complete, diverged or interrupted) may stand in
    for `config` only when it was trained from the same config by the same training code:
    otherwise a quick run could stand in for a full one, or a run trained before a fix for one
    trained after it. UsageError naming what differs and the fix."""
    from grokscope.files import read_json
    from grokscope.store import stored_config

    stored = stored_config(path)
    if stored is None:
        return
    if stored != config:
        old, new = stored.to_dict(), config.to_dict()
        diffs = [f"{section}.{key}: {old.get(section, {}).get(key)!r} there, {value!r} now"
                 for section, values in new.items() if isinstance(values, dict)
                 for key, value in values.items() if old.get(section, {}).get(key) != value]
        raise UsageError(f"{path} was trained with another config ({'; '.join(diffs[:2]) or 'name'}); "
                         "use another --out or delete that run")
    version = read_json(Path(path) / "run.json").get("training_version")
    if version != TRAINING_VERSION:
        raise UsageError(f"{path} was trained by other training code (training version {version or 'unrecorded'}, "
                         f"this grokscope trains version {TRAINING_VERSION}); delete that run to train it again, "
                         "or use another --out")

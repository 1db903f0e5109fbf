"""Runs trained outside grokscope's trainer: a `Recorder` for users' own training loops, and the
pieces `grokscope import checkpoints` shares with it (the config of a user's model, the split,
metrics measured from saved weights).

    rec = grokscope.Recorder("checkpoints/mine", model, task={"name": "modular", "p": 97},
                             steps=20_000, model_factory=make_model)
    for step in range(20_001):
        ...                                   # the user's forward pass, loss, accuracy
        if rec.wants(step):
            rec.checkpoint(step, model)
        rec.log(step, train_loss=loss, train_acc=acc, test_loss=t_loss, test_acc=t_acc)
        ...                                   # the user's update
    rec.finish()

The directory is a standard run directory (docs/run-directory.md): every probe, `report`,
`compare` and `info` read it unchanged. Metrics are written at checkpoints (at most every
`metrics_seconds`) and when the process exits, so a crashed script leaves a run that can be
analyzed up to its last checkpoint; run.json then says `interrupted` (or `running` after a
SIGKILL).
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from grokscope.config import RunConfig, TaskConfig
from grokscope.errors import UsageError
from grokscope.loading import spec_of
from grokscope.measures.losses import DTYPES, loss_and_accuracy
from grokscope.measures.transitions import transition_steps
from grokscope.store import METRIC_COLUMNS, Run, RunWriter
from grokscope.version import __version__

VALUES = METRIC_COLUMNS[1:]  # train_loss, train_acc, test_loss, test_acc, weight_norm, lr


# ---------------------------------------------------------------- shared with `import checkpoints`

def factory_spec(model_factory: Any, model: torch.nn.Module | None = None) -> str:
    """The `model.factory` string: given as a string, as a callable, or, without one, the model's
    class when it can be built with no arguments."""
    if isinstance(model_factory, str):
        return model_factory
    if model_factory is not None:
        return spec_of(model_factory)
    cls = type(model)
    try:
        required = [p for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):
        required = ["?"]
    if required:
        raise UsageError(f"{cls.__name__} needs arguments to be built ({', '.join(p.name for p in required)}); "
                         "pass model_factory= a function that returns the model (grokscope builds it "
                         "again to load each checkpoint)")
    return spec_of(cls)


def external_config(task: Any, steps: int, factory: str, config: Any = None, name: str | None = None,
                    hooks: str | Mapping[str, str] = "") -> RunConfig:
    """The RunConfig of a run trained elsewhere: the task (a task name, a `task` table or a
    TaskConfig), the user's other sections where given, model.name=custom with its factory."""
    if isinstance(config, RunConfig):
        data = config.to_dict()
    else:
        data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in dict(config or {}).items()}
    if isinstance(task, str):
        task_table = {"name": task}
    elif isinstance(task, TaskConfig):
        task_table = dataclasses.asdict(task)
    elif isinstance(task, Mapping):
        task_table = dict(task)
    elif task is None:
        task_table = data.get("task", {})
    else:
        raise UsageError(f"task must be a task name, a table of task settings or a TaskConfig, got {task!r}")
    data["task"] = {**data.get("task", {}), **task_table}
    if isinstance(hooks, Mapping):
        hooks = ",".join(f"{k}={v}" for k, v in hooks.items())
    data["model"] = {**data.get("model", {}), "name": "custom", "factory": factory}
    if hooks:
        data["model"]["hooks"] = hooks
    optim = data.setdefault("optim", {})
    optim.setdefault("warmup_steps", 0)  # grokscope's warm-up default says nothing of a user's loop
    data["train"] = {**data.get("train", {}), "steps": int(steps)}
    if name is not None:
        data["name"] = name
    return RunConfig.from_dict(data)


def split_for(task, config: RunConfig, train_indices: Iterable[int] | None = None,
              test_indices: Iterable[int] | None = None) -> tuple[Any, dict[str, Any]]:
    """The task with the user's split (indices into the task's row-major grid; the test set is
    the rest unless given), or grokscope's rule with the config's split seed; and its split.json."""
    if train_indices is None:
        return task, task.split_dict("random.Random(seed).shuffle(row-major grid); first int(frac_train * n) "
                                     "are train", config.split_seed)
    n = int(task.all_inputs.shape[0])
    train = [int(i) for i in (train_indices.tolist() if torch.is_tensor(train_indices) else train_indices)]
    if test_indices is None:
        chosen = set(train)
        test = [i for i in range(n) if i not in chosen]
    else:
        test = [int(i) for i in (test_indices.tolist() if torch.is_tensor(test_indices) else test_indices)]
    bad = [i for i in train + test if not 0 <= i < n]
    if bad:
        raise UsageError(f"split index {bad[0]} is outside the task's {n} examples (indices are rows of "
                         "task.all_inputs, row-major over the operands)")
    if len(set(train)) != len(train) or set(train) & set(test):
        raise UsageError("the split repeats an index or puts one example in both train and test")
    split = {"rule": "given by the user", "seed": config.split_seed, "n_total": n, "n_train": len(train),
             "train_indices": train, "test_indices": test}
    return task.with_split(split), split


@torch.no_grad()
def measured_row(model: torch.nn.Module, task, config: RunConfig, step: int, lr: float = math.nan) -> tuple:
    """A metrics row measured from weights: train and test loss and accuracy (the config's loss,
    in its loss dtype) and the weight norm."""
    from grokscope.tasks import task_targets

    dtype = DTYPES[config.train.loss_dtype]
    targets = task_targets(task)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        values = []
        for x, y in ((task.train_inputs, task.train_labels), (task.test_inputs, task.test_labels)):
            loss, acc = loss_and_accuracy(model(x.to(device)), y.to(device), config.train.loss, dtype,
                                          None if targets is None else targets.to(device))
            values += [float(loss), float(acc)]
    finally:
        model.train(was_training)
    return (step, *values, global_norm(model), lr)


def global_norm(model: torch.nn.Module | list[torch.Tensor]) -> float:
    """The global L2 norm of the parameters (a model's, or a list of them), as grokscope's
    trainer logs it (one fused pass)."""
    from grokscope.training.state import weight_norm

    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else model
    return weight_norm(params) if params else 0.0


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- the Recorder

class Recorder:
    """Writes a grokscope run directory from a user's own training loop.

    `task`: a task name ("modular"), a table of task settings ({"name": "modular", "p": 97,
    "frac_train": 0.3}) or a TaskConfig; `steps`: the planned number of steps (it sets the dense
    checkpoint schedule); `model_factory`: a function (or "module:function") that returns a fresh
    model, so grokscope can load each checkpoint (default: the model's class, when it takes no
    arguments); `config`: other sections to record ({"optim": {"lr": 1e-3, ...}, "train":
    {"seed": 0}}); `hooks`: our names for the model's parts ("embed=embed,unembed=fc_out,
    blocks.0.mlp.hook_post=act", models/adapter.py), which the embedding-, neuron- and
    activation-based probes need; `train_indices` / `test_indices`: the user's split as rows of
    `rec.task.all_inputs` (default: grokscope's split rule with the config's seed). The model
    must accept `rec.task`'s inputs and return logits at the answer position (DESIGN's model
    contract); `rec.task.train_inputs` etc. hold the data.

    `analyze`: probes (names or specs) to run on each new checkpoint while the loop trains, in a
    watcher process at idle priority (`analysis.live`, docs/live.md), into `analysis_out`
    (default analyses/<run name>), with `every` and `params` as `grokscope analyze` takes them;
    `finish()` waits for the final analysis and report (`rec.report`).
    """

    def __init__(self, out: str | os.PathLike, model: torch.nn.Module, *, task: Any = None, steps: int,
                 model_factory: Any = None, config: Any = None, train_indices: Iterable[int] | None = None,
                 test_indices: Iterable[int] | None = None, hooks: str | Mapping[str, str] = "",
                 metrics_seconds: float = 5.0, analyze: Any = None, every: int | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None, analysis_out: str | os.PathLike | None = None):
        from grokscope.tasks import build_task
        from grokscope.training.schedule import checkpoint_schedule

        if int(steps) < 1:
            raise UsageError(f"steps must be at least 1, got {steps}")
        self.path = Path(out)
        self.model = model
        self._params = list(model.parameters())  # walking the module tree every step is not free
        self.config = external_config(task, steps, factory_spec(model_factory, model), config,
                                      name=self.path.name, hooks=hooks)
        from grokscope.models.adapter import Adapted

        Adapted(model, self.config.model.hooks)  # a wrong module path fails here, not in the analysis
        self.task, split = split_for(build_task(self.config), self.config, train_indices, test_indices)
        self.writer = RunWriter(self.path)
        self.writer.check_new(self.config)
        self.schedule = checkpoint_schedule(self.config.train.steps, self.config.checkpoint)
        self._wanted = set(self.schedule)
        self.metrics_seconds = metrics_seconds
        self._last_write = time.perf_counter()
        self._t0 = time.perf_counter()
        self.finished = False
        self._checkpointed: int | None = None  # a checkpoint step whose metrics are not written yet
        self.info = {
            "grokscope_version": __version__, "torch_version": torch.__version__,
            "config": self.config.to_dict(), "task_description": self._describe(), "status": "running",
            "schedule": self.schedule,
            "n_params": sum(p.numel() for p in model.parameters()),
            "device": str(next(model.parameters()).device) if any(True for _ in model.parameters()) else "cpu",
            "trainer": "grokscope.Recorder (the user's own loop)",
        }
        self.watcher = None
        self.report: Path | None = None
        if analyze is not None:
            from grokscope.analysis.live import Watcher, check_selection

            check_selection(analyze, every, dict(params or {}))
        self.writer.create(self.info, split)
        atexit.register(self._at_exit)
        if analyze is not None:
            self.watcher = Watcher(self.path, analyze, every=every, params={k: dict(v) for k, v in (params or {}).items()},
                                   out=analysis_out or Path("analyses") / self.path.name)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, {len(self.writer.rows)} rows)"

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.finish()
        else:
            self._at_exit()

    # -- the loop's calls
    def wants(self, step: int) -> bool:
        """Whether `step` is on the checkpoint schedule (every step early, log-spaced, then every
        steps // 200: docs/run-directory.md)."""
        return int(step) in self._wanted

    def checkpoint(self, step: int, model: torch.nn.Module | None = None) -> None:
        """Save the model's weights as checkpoint `step` (atomically), then the metrics so far
        when `metrics_seconds` have passed (or at the next `log`, so that the row of this step
        goes with it)."""
        self._check_open()
        self.writer.save_checkpoint(int(step), cpu_state_dict(model if model is not None else self.model),
                                    recorded_by="grokscope.Recorder")
        self._checkpointed = int(step)
        self._maybe_flush()

    def log(self, step: int, **values: Any) -> None:
        """One metrics row: any of train_loss, train_acc, test_loss, test_acc, weight_norm, lr
        (floats or 0-d tensors; missing ones are NaN, weight_norm is measured on the model when
        not given). Logging a step again updates its row; steps must not go back."""
        self._check_open()
        unknown = sorted(set(values) - set(VALUES))
        if unknown:
            raise UsageError(f"unknown metric {unknown[0]!r}; the metrics table holds {', '.join(VALUES)}")
        step = int(step)
        rows = self.writer.rows
        if rows and step < rows[-1][0]:
            raise UsageError(f"step {step} logged after step {rows[-1][0]}; log steps in order")
        if "weight_norm" not in values:
            values["weight_norm"] = global_norm(self._params)
        if rows and rows[-1][0] == step:
            old = dict(zip(VALUES, rows[-1][1:]))
            rows[-1] = (step, *[_float(values[k]) if k in values else old[k] for k in VALUES])
        else:
            rows.append((step, *[_float(values.get(k, math.nan)) for k in VALUES]))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        # after a checkpoint (whether its step is logged before or after it), at most every
        # metrics_seconds: a killed script's metrics reach its last checkpoint
        rows = self.writer.rows
        if self._checkpointed is not None and rows and rows[-1][0] >= self._checkpointed \
                and time.perf_counter() - self._last_write >= self.metrics_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the metrics table now (atomically)."""
        self.writer.write_metrics()
        self._last_write = time.perf_counter()
        self._checkpointed = None

    def finish(self, measure_missing: bool = True) -> Run:
        """Write the metrics and mark the run complete (with its memorization and generalization
        steps). With no test metrics logged, `measure_missing` measures every checkpoint's
        losses and accuracies from its weights first. Returns the Run."""
        if self.finished:
            return Run(self.path)
        if measure_missing and not any(r[3] == r[3] for r in self.writer.rows):
            import copy

            self.writer.rows = measure_checkpoints(Run(self.path), self.writer.rows,
                                                   new_model=lambda: copy.deepcopy(self.model))
        self.flush()
        memorized, generalized = transition_steps(self.writer.metrics())
        self.writer.set_status(self.info, "complete", memorization_step=memorized,
                               generalization_step=generalized,
                               train_seconds=round(time.perf_counter() - self._t0, 3))
        self.finished = True
        atexit.unregister(self._at_exit)
        if self.watcher is not None:
            self.report = self.watcher.finish(progress=False)
        return Run(self.path)

    def _describe(self) -> str:
        from grokscope.tasks import TASKS, describe_task

        return describe_task(self.config) if self.config.task.name in TASKS else self.config.task.name

    # -- internals
    def _check_open(self) -> None:
        if self.finished:
            raise UsageError(f"{self.path}: the Recorder has finished; start a new one for another run")

    def _at_exit(self) -> None:
        """The script ended (an exception, Ctrl-C, sys.exit) before finish(): keep what was logged."""
        if self.finished:
            return
        self.finished = True
        atexit.unregister(self._at_exit)
        try:
            self.writer.write_metrics()
            self.writer.set_status(self.info, "interrupted")
        except OSError:
            pass
        if self.watcher is not None:
            self.watcher.stop()


def _float(value: Any) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def measure_checkpoints(run: Run, rows: list[tuple] = (), new_model=None) -> list[tuple]:
    """`rows` with a measured row for every checkpoint step they lack (or hold no test loss for),
    in step order; the learning rate of a measured row is NaN. `new_model` builds the model
    (default: the run's model factory)."""
    have = {r[0]: r for r in rows if r[3] == r[3]}
    task, config = run.task, run.config
    measured = {}
    for step in run.steps:
        if step not in have:
            if new_model is None:
                model = run.model(step)
            else:
                model = new_model()
                model.load_state_dict(run.state_dict(step))
            measured[step] = measured_row(model, task, config, step)
    merged = {r[0]: r for r in rows}
    merged.update(measured)
    return [merged[s] for s in sorted(merged)]


__all__ = ["Recorder", "external_config", "factory_spec", "measure_checkpoints", "measured_row", "split_for"]

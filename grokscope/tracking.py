"""Experiment tracking: `--log wandb` sends a run's metrics and config, an analysis's probe
columns and figures, and a sweep's runs and phase table to Weights & Biases; `--log tensorboard`
writes the same as TensorBoard event files under the directory's `tensorboard/<job>/`.

`wandb` is imported only here and only when asked for. `WANDB_MODE=offline` writes a local
folder (`./wandb/offline-run-*`, or under `WANDB_DIR`) that `wandb sync` uploads later;
`WANDB_PROJECT` names the project (default "grokscope"). Each grokscope directory maps to one
W&B run whose id is derived from the directory's path, so a resumed run or a re-run analysis
continues the same W&B run.

Training hands rows over at its resume-state flushes (every `checkpoint.resume_seconds`), at most
`MAX_ROWS` per run (a stride over steps; metrics.csv keeps every row), so logging costs the
training loop almost nothing: docs/tracking.md has the measurement.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.errors import UsageError

LOGGERS = ("none", "wandb", "tensorboard")
MAX_ROWS = 10_000   # metric rows sent per run; W&B's charts sample far fewer


def check_logger(name: str | None) -> str:
    name = name or "none"
    if name not in LOGGERS:
        raise UsageError(f"unknown --log {name!r}; choose one of {', '.join(LOGGERS)}")
    return name


def run_id(path: str | os.PathLike, job: str) -> str:
    return hashlib.sha1(f"{Path(path).resolve()}:{job}".encode()).hexdigest()[:16]


class WandbTracker:
    """One W&B run for one grokscope directory (a run, an analysis, a sweep)."""

    def __init__(self, path: str | os.PathLike, job: str, config: dict[str, Any], *, name: str | None = None,
                 group: str | None = None, steps: int | None = None, any_order: bool = False):
        try:
            import wandb
        except ImportError:
            raise UsageError("--log wandb needs Weights & Biases: pip install wandb") from None
        self.wandb = wandb
        self.path = Path(path)
        self.stride = max(1, math.ceil(steps / MAX_ROWS)) if steps else 1
        self.last_step = -1
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "grokscope"), name=name or self.path.name,
                                  id=run_id(self.path, job), resume="allow", job_type=job, group=group,
                                  config=config, reinit="create_new", dir=os.environ.get("WANDB_DIR") or None,
                                  settings=wandb.Settings(console="off", silent=True, disable_git=True,
                                                          disable_code=True, x_save_requirements=False,
                                                          x_stats_sampling_interval=60.0))
        except Exception as e:  # no login, no network: one line, with the offline way out
            raise UsageError(f"W&B did not start ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                             "log in with `wandb login`, or set WANDB_MODE=offline and `wandb sync` later") from None
        # A live analysis sends rows out of step order (the newest checkpoint first): W&B's own step
        # only grows, so the rows carry the training step as their x axis instead.
        self.any_order = any_order
        self.defined: set[str] = set()
        if any_order:
            self.run.define_metric("step")

    def log_rows(self, rows: list[tuple], columns: tuple[str, ...], last: bool = False) -> None:
        """Metric rows (step first) not sent yet, every `stride`-th step (and the last row when
        `last`); NaN values are left out."""
        for i, row in enumerate(rows):
            step = int(row[0])
            if step <= self.last_step or (step % self.stride and not (last and i == len(rows) - 1)):
                continue
            values = {k: float(v) for k, v in zip(columns[1:], row[1:]) if v == v}
            self.run.log(values, step=step)
            self.last_step = step

    def log_tables(self, tables: dict[str, dict[str, np.ndarray]]) -> None:
        """Probe tables' numeric columns against `step`, as `<probe>/<column>`, merged by step
        (W&B wants each step's values together, in step order)."""
        by_step: dict[int, dict[str, float]] = {}
        for prefix, table in tables.items():
            steps = table.get("step")
            if steps is None:
                continue
            numeric = {k: np.asarray(v) for k, v in table.items()
                       if k != "step" and np.asarray(v).dtype.kind in "fiu"}
            for i, step in enumerate(np.asarray(steps).astype(int)):
                values = by_step.setdefault(int(step), {})
                values.update({f"{prefix}/{k}": float(v[i]) for k, v in numeric.items() if v[i] == v[i]})
        for step in sorted(by_step):
            if self.any_order and by_step[step]:
                for prefix in {k.split("/")[0] for k in by_step[step]} - self.defined:
                    self.run.define_metric(f"{prefix}/*", step_metric="step")
                    self.defined.add(prefix)
                self.run.log({**by_step[step], "step": step})
            elif step > self.last_step and by_step[step]:
                self.run.log(by_step[step], step=step)
                self.last_step = step

    def log_images(self, paths: list[Path], step: int | None = None) -> None:
        images = {f"figures/{p.stem}": self.wandb.Image(str(p)) for p in paths}
        if images and self.any_order:
            self.run.log(images)
        elif images:
            self.run.log(images, step=max(self.last_step, step or 0) if step is not None or self.last_step >= 0
                         else None)

    def summary(self, **values: Any) -> None:
        for k, v in values.items():
            self.run.summary[k] = v

    def finish(self) -> None:
        self.run.finish()


class TensorBoardTracker:
    """TensorBoard event files for one grokscope directory, under `<path>/tensorboard/<job>/`
    (`tensorboard --logdir <path>/tensorboard`, or a parent folder to see several runs). Scalars
    take any step order, so a live analysis writes each checkpoint as it is measured."""

    def __init__(self, path: str | os.PathLike, job: str, config: dict[str, Any], *, name: str | None = None,
                 group: str | None = None, steps: int | None = None, any_order: bool = False):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--log tensorboard needs TensorBoard: pip install tensorboard "
                             "(or pip install -e .[tensorboard])") from None
        self.path = Path(path)
        self.dir = self.path / "tensorboard" / job
        self.writer = SummaryWriter(log_dir=str(self.dir))
        self.last_step = -1
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=1, sort_keys=True, default=str) + "\n```")

    def log_rows(self, rows: list[tuple], columns: tuple[str, ...], last: bool = False) -> None:
        """Metric rows (step first) not written yet; NaN values are left out."""
        for row in rows:
            step = int(row[0])
            if step <= self.last_step:
                continue
            for k, v in zip(columns[1:], row[1:]):
                if v == v:
                    self.writer.add_scalar(f"metrics/{k}", float(v), step)
            self.last_step = step
        self.writer.flush()

    def log_tables(self, tables: dict[str, dict[str, np.ndarray]]) -> None:
        """Probe tables' numeric columns against `step`, as `<probe>/<column>`."""
        for prefix, table in tables.items():
            steps = table.get("step")
            if steps is None:
                continue
            for k, v in table.items():
                v = np.asarray(v)
                if k == "step" or v.dtype.kind not in "fiu":
                    continue
                for step, value in zip(np.asarray(steps).astype(int), v):
                    if value == value:
                        self.writer.add_scalar(f"{prefix}/{k}", float(value), int(step))
        self.writer.flush()

    def log_images(self, paths: list[Path], step: int | None = None) -> None:
        from PIL import Image

        for p in paths:
            with Image.open(p) as im:
                image = np.asarray(im.convert("RGB"))
            self.writer.add_image(f"figures/{p.stem}", image, max(self.last_step, step or 0), dataformats="HWC")
        self.writer.flush()

    def summary(self, **values: Any) -> None:
        lines = [f"| {k} | {v} |" for k, v in values.items()]
        self.writer.add_text("summary", "| key | value |\n|---|---|\n" + "\n".join(lines))

    def finish(self) -> None:
        self.writer.close()


def tracker(kind: str | None, path: str | os.PathLike, job: str, config: dict[str, Any],
            **kw) -> WandbTracker | TensorBoardTracker | None:
    """The tracker `--log` asks for, or None for `none`. `any_order=True`: rows may come in any
    step order (a live analysis)."""
    kind = check_logger(kind)
    if kind == "none":
        return None
    return (WandbTracker if kind == "wandb" else TensorBoardTracker)(path, job, config, **kw)


# ---------------------------------------------------------------- what each command sends

def log_run(kind: str, path: str | os.PathLike, *, group: str | None = None) -> None:
    """A finished run directory's config, metrics and transition steps (what a sweep sends for
    each of its runs once they are trained)."""
    from grokscope.store import METRIC_COLUMNS, Run, read_metrics_rows

    run = Run(path)
    track = tracker(kind, run.path, "train", run.info["config"], group=group, steps=run.config.train.steps)
    if track is None:
        return
    try:
        track.log_rows(read_metrics_rows(run.path / "metrics.csv"), METRIC_COLUMNS, last=True)
        track.summary(memorization_step=run.info.get("memorization_step"),
                      generalization_step=run.info.get("generalization_step"), status=run.status)
    finally:
        track.finish()


def log_analysis(kind: str, out: str | os.PathLike, run) -> None:
    """An analysis directory: every probe's numeric columns against step, the report's figures,
    and the transition steps."""
    from grokscope.tables import read_manifest, read_result, read_table, table_path

    out = Path(out)
    track = tracker(kind, out, "analyze", run.info["config"], name=f"{run.name} (analysis)")
    if track is None:
        return
    try:
        manifest = read_manifest(out)
        track.log_tables({name: read_table(table_path(out, name)) for name, entry in manifest.get("probes", {}).items()
                          if entry.get("status") == "ok" and table_path(out, name).exists()})
        track.log_images(sorted((out / "figures").glob("*.png")))
        phases = read_result(out, "phases") or {}
        track.summary(**{k: v for k, v in phases.items() if isinstance(v, (int, float, str)) or v is None},
                      report=str((out / "report.html").resolve()))
    finally:
        track.finish()


def log_sweep(kind: str, out: str | os.PathLike, run_dirs: list[Path]) -> None:
    """A sweep: each run (grouped under the sweep's name), then the phase table and figures."""
    from grokscope.tables import read_table

    out = Path(out)
    if check_logger(kind) == "none":
        return
    for path in run_dirs:
        log_run(kind, path, group=out.name)
    track = tracker(kind, out, "sweep", {"runs": len(run_dirs)}, group=out.name, name=f"{out.name} (sweep)")
    try:
        for name in ("phases", "phase_diagram"):
            path = out / f"{name}.csv"
            if path.exists() and isinstance(track, WandbTracker):
                table = read_table(path)
                columns = list(table)
                rows = [[_plain(table[c][i]) for c in columns] for i in range(len(table[columns[0]]))]
                track.run.log({name: track.wandb.Table(columns=columns, data=rows)})
        track.log_images(sorted(out.glob("*.png")))
    finally:
        track.finish()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = ["LOGGERS", "MAX_ROWS", "TensorBoardTracker", "WandbTracker", "check_logger", "log_analysis", "log_run", "log_sweep", "run_id",
           "tracker"]

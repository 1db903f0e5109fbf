"""The run directory (DESIGN.md, "Contract: run directory"): atomic files, checkpoints, metrics,
resume state. The one module that knows its layout: `RunWriter` is its only writer (trainers and
importers), `Run` / `load_run` its reader.

    run.json                      resolved config, versions, status, checkpoint schedule
    split.json                    the exact train/test split
    metrics.csv                   one row per logged step
    checkpoints/step_XXXXXXXX.safetensors
    resume/state.safetensors      weights, optimizer, RNG and filter state at one step

Every file is written through `files` (a temporary name, then a rename), so a crash never leaves
a half file that looks complete.
"""

from __future__ import annotations

import csv
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grokscope.config import RunConfig
from grokscope.errors import CorruptFileError, UsageError
from grokscope.files import (
    atomic_write_json,
    atomic_write_text,
    disk_full_error,
    fsync_file,
    load_tensors,
    read_json,
    save_tensors,
)
from grokscope.measures.transitions import transition_steps

METRIC_COLUMNS = ("step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr")


# ---------------------------------------------------------------- the run directory

RUN_INFO = "run.json"
SPLIT = "split.json"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"
RESUME_STATE = "resume/state.safetensors"
RESUME_PREVIOUS = "resume/previous.safetensors"  # the state before, while a run is unfinished


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def format_metrics(rows: list[tuple]) -> str:
    return "".join([METRICS_HEADER, *map(format_metric_row, rows)])


METRICS_HEADER = ",".join(METRIC_COLUMNS) + "\n"


def format_metric_row(row: tuple) -> str:
    """One metrics.csv line: the step, then every value as Python's shortest exact repr."""
    return ",".join([str(row[0])] + [repr(float(v)) for v in row[1:]]) + "\n"


def read_metrics_rows(path: Path) -> list[tuple]:
    """The rows of a metrics table. A row cut short by a crash ends the table (resuming recomputes
    it); a cell that is not a number raises CorruptFileError naming the row and the column."""
    if not path.exists():
        return []
    try:
        return _read_metrics_rows(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorruptFileError(f"{path} is not a CSV table ({type(e).__name__}); restore it from a copy "
                               "(`grokscope analyze --probe metrics` recomputes the losses from the "
                               "checkpoints)") from None


def _read_metrics_rows(path: Path) -> list[tuple]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        if header[: len(METRIC_COLUMNS)] != list(METRIC_COLUMNS):
            raise CorruptFileError(f"{path} line 1 is not the metrics header ({','.join(METRIC_COLUMNS)}); "
                                   "restore the file from a copy, or train the run again")
        rows = []
        for number, line in enumerate(reader, start=2):
            if len(line) != len(header):
                break  # a row cut short by a crash: everything after it is recomputed
            try:
                rows.append((int(line[0]), *map(float, line[1:])))
            except ValueError:
                col, cell = _bad_cell(header, line)
                raise CorruptFileError(
                    f"{path} line {number} has {cell!r} in column {col}, not a number; restore it from a "
                    f"copy, or delete line {number} and the lines after it (`grokscope analyze --probe "
                    "metrics` recomputes the losses from the checkpoints)") from None
    return rows


def _bad_cell(header: list[str], line: list[str]) -> tuple[str, str]:
    for col, cell in zip(header, line):
        try:
            int(cell) if col == "step" else float(cell)
        except ValueError:
            return col, cell
    return header[0], line[0]


def metrics_columns(rows: list[tuple]) -> dict[str, np.ndarray]:
    """Metric rows -> the table as columns: {"step": int array, "train_loss": float array, ...}."""
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(METRIC_COLUMNS))
    columns = {name: table[:, i] for i, name in enumerate(METRIC_COLUMNS)}
    columns["step"] = columns["step"].astype(np.int64)
    return columns


def is_run(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_INFO).is_file()


def run_status(path: str | os.PathLike) -> str | None:
    """The status in a run directory's run.json, or None where there is no readable one."""
    try:
        return read_json(Path(path) / RUN_INFO).get("status")
    except (OSError, ValueError, CorruptFileError):
        return None


def stored_config(path: str | os.PathLike) -> RunConfig | None:
    """The config a run directory was trained with, or None where there is none."""
    try:
        data = read_json(Path(path) / RUN_INFO).get("config")
    except (OSError, ValueError, CorruptFileError):
        return None
    return RunConfig.from_dict(data) if data is not None else None


def estimate_run_bytes(tensor_sizes: list[int], n_checkpoints: int, n_rows: int,
                       resume_copies: int = 3) -> int:
    """About how many bytes a run directory takes when complete: the checkpoints (float32
    tensors and a safetensors header each), the resume state (the weights plus the optimizer's
    and filters' copies: `resume_copies` in all, 3 for Adam), and the metrics table."""
    header = 64 + 96 * len(tensor_sizes)
    weights = 4 * sum(tensor_sizes)
    checkpoint = weights + header
    resume = resume_copies * weights + 2 * header + 4096
    return n_checkpoints * checkpoint + resume + 140 * n_rows + 8192


class RunWriter:
    """The one writer of a run directory: create it, keep its metric rows, save checkpoints and
    the resume state atomically, and finish it. Trainers and importers write through this class
    alone, so no other module knows a file name of the run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[tuple] = []
        # metrics.csv lines already formatted, and the row each was made from (write_metrics
        # formats only rows it has not seen: a long run's flush no longer grows with its length)
        self._lines: list[str] = []
        self._line_rows: list[tuple] = []
        self._unsynced: list[Path] = []  # checkpoints saved with sync=False

    # -- creating
    def check_new(self, config: RunConfig) -> None:
        """Refuse a directory that holds anything (a run of this or another config, or files)."""
        out = self.path
        if is_run(out):
            stored = stored_config(out)
            if stored != config:
                name = stored.name if stored is not None else None
                raise UsageError(f"{out} holds a different run ({name!r}); choose another --out or "
                                 "delete that directory")
            if run_status(out) == "complete":
                raise UsageError(f"{out} already holds this run, complete; choose another --out "
                                 "to train it again")
            raise UsageError(f"{out} holds an unfinished run of this config; continue it with "
                             f"`grokscope train --resume {out}`")
        if out.exists() and any(out.iterdir()):
            left = {p.name for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))}
            if left <= {SPLIT}:  # a creation killed before run.json was written: start it again
                for p in out.iterdir():
                    p.unlink()
                return
            raise UsageError(f"{out} is not empty and is not a grokscope run; choose another --out")

    def create(self, info: dict[str, Any], split: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / SPLIT, split)
        self.write_info(info)

    # -- run.json and split.json
    def read_info(self) -> dict[str, Any]:
        return read_json(self.path / RUN_INFO)

    def read_split(self) -> dict[str, Any]:
        return read_json(self.path / SPLIT)

    def write_info(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.path / RUN_INFO, info)

    def set_status(self, info: dict[str, Any], status: str, **fields: Any) -> None:
        info.update(status=status, **fields)
        self.sync_checkpoints()
        self.write_info(info)

    # -- metrics
    def load_rows(self, before_step: int) -> None:
        """Keep the stored metric rows of steps before `before_step` (resuming from there)."""
        self.rows = [r for r in read_metrics_rows(self.path / METRICS) if r[0] < before_step]

    def append(self, row: tuple) -> None:
        self.rows.append(row)

    def write_metrics(self) -> None:
        rows, seen = self.rows, self._line_rows
        kept, limit = 0, min(len(rows), len(seen))
        while kept < limit and rows[kept] is seen[kept]:  # the prefix formatted before
            kept += 1
        self._lines[kept:] = map(format_metric_row, rows[kept:])
        self._line_rows = list(rows)
        atomic_write_text(self.path / METRICS, "".join([METRICS_HEADER, *self._lines]))

    def metrics(self) -> dict[str, np.ndarray]:
        return metrics_columns(self.rows)

    # -- checkpoints and the resume state
    def save_checkpoint(self, step: int, state_dict: dict[str, torch.Tensor], *, sync: bool = True,
                        **metadata: str) -> None:
        """sync=False (the trainers, which also write a resume state): the checkpoint is made
        durable with the next resume state or status, not on its own, since an fsync per file is a
        large share of a stacked group's checkpointing (`bench/checkpoint_io.py`,
        docs/benchmarks.md). A machine crash can then
        lose only checkpoints after the last resume state, which resuming writes again."""
        path = self.path / CHECKPOINTS / checkpoint_name(step)
        save_tensors(path, state_dict, {"step": str(step), "format": "grokscope", **metadata}, sync=sync)
        if not sync:
            self._unsynced.append(path)

    def sync_checkpoints(self) -> None:
        """fsync the checkpoints saved with sync=False. One that fails (a disk that reports a
        full disk only on fsync) is removed with every later one: they all come after the last
        resume state, so resuming writes them again, and none is left that may not be whole."""
        unsynced, self._unsynced = self._unsynced, []
        for i, path in enumerate(unsynced):
            try:
                fsync_file(path)
            except OSError as e:
                size = path.stat().st_size if path.exists() else 0
                for p in unsynced[i:]:
                    p.unlink(missing_ok=True)
                raise disk_full_error(e, path, size) from None

    def has_resume_state(self) -> bool:
        return (self.path / RESUME_STATE).exists() or (self.path / RESUME_PREVIOUS).exists()

    def save_resume_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        """Metrics first, then the resume state: a crash between the two only leaves extra rows,
        which resuming drops. The state it replaces is kept as the previous one, so a stacked
        group killed while flushing its runs one by one can bring them all back to one step.
        Checkpoints saved with sync=False are made durable first."""
        self.sync_checkpoints()
        self.write_metrics()
        state = self.path / RESUME_STATE
        if state.exists():
            os.replace(state, self.path / RESUME_PREVIOUS)
        save_tensors(state, tensors, metadata)

    def drop_previous_resume_state(self) -> None:
        (self.path / RESUME_PREVIOUS).unlink(missing_ok=True)

    def load_resume_state(self, step: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The latest resume state (or, with `step`, the one at that step); a kill between keeping
        the previous state and writing the new one leaves only the previous: it is used."""
        hint = f"delete {self.path / Path(RESUME_STATE).parent} to restart the run from step 0"
        paths = [p for p in (self.path / RESUME_STATE, self.path / RESUME_PREVIOUS) if p.exists()]
        if step is None:
            return load_tensors(paths[0], hint=hint)
        for path in paths:
            tensors, meta = load_tensors(path, hint=hint)
            if int(meta["step"]) == step:
                return tensors, meta
        raise CorruptFileError(f"{self.path}: no resume state at step {step:,} (its runs of one stacked group "
                               f"stopped at different steps); {hint}")

    def resume_step(self) -> int:
        """The step the resume state is at (0 without one)."""
        return int(self.load_resume_state()[1]["step"]) if self.has_resume_state() else 0

    def remove_stale_temp_files(self) -> None:
        """Temp files a killed writer left behind (`.<name>.<random>.tmp`: never mistaken for a
        finished file, but clutter); called when a run is resumed."""
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


class Run:
    """A run directory on disk. `run.steps`, `run.metrics`, `run.model(step)`, `run.task`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        fix = "restore it from a copy; without it the run cannot be read or resumed"
        self.info = read_json(self.path / RUN_INFO, fix)
        if not isinstance(self.info, dict) or not isinstance(self.info.get("config"), dict):
            raise CorruptFileError(f"{self.path / RUN_INFO} has no config table; {fix}")
        try:
            self.config = RunConfig.from_dict(self.info["config"])
        except UsageError as e:
            raise CorruptFileError(f"{self.path / RUN_INFO}: {e}") from None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, steps={len(self.steps)})"

    # a notebook's view of a run, registered by the report layer (report/notebook.py) when it is
    # imported, as `grokscope.train`, `grokscope.load_run` and the rest do: the store never
    # imports the report
    html_view = None

    def _repr_html_(self) -> str | None:
        """In a notebook: the run's key facts and its training curves."""
        view = type(self).html_view
        return view(self) if view is not None else None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def steps(self) -> list[int]:
        """Steps with a checkpoint on disk, ascending."""
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(int(p.name[5:13]) for p in self.checkpoint_dir.glob("step_*.safetensors")
                      if p.name[5:13].isdigit())

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / checkpoint_name(step)

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """The metrics table as columns: {"step": int array, "train_loss": float array, ...}. The
        table of a complete run of grokscope's trainer ends at its last step (the trainer logs it
        always): one that ends earlier was cut short, and is refused rather than read as a
        shorter run."""
        rows = read_metrics_rows(self.path / METRICS)
        info = self.info
        if info.get("status") == "complete" and "training_version" in info and self.config is not None:
            last = info.get("stopped_early_at") or self.config.train.steps
            if not rows or rows[-1][0] < last:
                ends = f"ends at step {rows[-1][0]:,}" if rows else "holds no rows"
                raise CorruptFileError(f"{self.path / METRICS} {ends}, but the run completed step {last:,}: the "
                                       "file was cut short; restore it from a copy")
        return metrics_columns(rows)

    @property
    def metrics_mtime_ns(self) -> int:
        """When the metrics table last changed (0 without one)."""
        path = self.path / METRICS
        return path.stat().st_mtime_ns if path.exists() else 0

    @property
    def memorization_step(self) -> int | None:
        return transition_steps(self.metrics)[0]

    @property
    def generalization_step(self) -> int | None:
        return transition_steps(self.metrics)[1]

    @cached_property
    def task(self):
        from grokscope.tasks import build_task

        fix = "restore it from a copy (it holds the run's exact train/test split)"
        split = read_json(self.path / SPLIT, fix)
        if not isinstance(split, dict) or not {"train_indices", "test_indices"} <= set(split):
            raise CorruptFileError(f"{self.path / SPLIT} lacks train_indices or test_indices; {fix}")
        return build_task(self.config).with_split(split)

    def new_model(self) -> torch.nn.Module:
        from grokscope.models import build_model

        return build_model(self.config, self.task)

    def state_dict(self, step: int) -> dict[str, torch.Tensor]:
        path = self.checkpoint_path(step)
        if not path.exists():
            near = ", ".join(map(str, self.steps[:5]))
            raise UsageError(f"run {self.name} has no checkpoint at step {step}; "
                             f"checkpointed steps start {near} ... (see run.steps)")
        # training writes a checkpoint once: resuming does not bring a damaged one back
        tensors, _ = load_tensors(path, hint="restore it from a copy, or train the run again into a new --out "
                                             "(its other checkpoints are unaffected)")
        return tensors

    def model(self, step: int | None = None, device: str = "cpu") -> torch.nn.Module:
        """A model with the weights of checkpoint `step` (default: the last one), in eval mode."""
        if step is None:
            if not self.steps:
                raise UsageError(f"run {self.name} has no checkpoints yet")
            step = self.steps[-1]
        model = self.new_model()
        model.load_state_dict(self.state_dict(step))
        return model.to(device).eval()


def load_run(path: str | os.PathLike) -> Run:
    path = Path(path)
    if not is_run(path):
        what = "does not exist" if not path.exists() else "is not a grokscope run (no run.json)"
        raise UsageError(f"{path} {what}; pass a directory written by `grokscope train`")
    return Run(path)

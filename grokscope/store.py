"""The run directory (DESIGN.md, "Contract: run directory"): atomic files, checkpoints, metrics,
resume state. The one module that knows its layout: `RunWriter` is its only writer (trainers and
importers), `Run` / `load_run` its reader.

    run.json                      resolved config, versions, status, checkpoint schedule
    split.json                    the exact train/test split
    metrics.csv                   one row per logged step
    checkpoints/step_XXXXXXXX.safetensors
    resume/state.safetensors      weights, optimizer, RNG and filter state at one step

Every file is written to a temporary name and renamed, so a crash never leaves a half file that
looks complete. Nothing is unpickled: tensors are safetensors, the rest JSON and CSV.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import struct
import tempfile
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as np_save
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from grokscope.config import RunConfig
from grokscope.errors import CorruptFileError, DiskFullError, UsageError
from grokscope.measures.transitions import transition_steps

METRIC_COLUMNS = ("step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr")


# ---------------------------------------------------------------- atomic files

def _file_mode() -> int:
    """0o666 less the process umask: what open() would give, not mkstemp's private 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sync: bool = True) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it over `path`. A full disk
    (or a quota or file-size limit) raises DiskFullError and leaves the old file as it was.
    sync=False leaves the fsync to the caller (`fsync_file`): the rename still makes the file
    whole or absent for any process that reads it, only a machine crash can lose it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _full(e, path, len(data)) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _full(e, path, len(data)) from None
        raise


def fsync_file(path: str | os.PathLike) -> None:
    """Make a file written with sync=False durable (a missing one is skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _full(error: OSError, path: Path, size: int) -> OSError:
    if error.errno not in NO_SPACE:
        return error
    return DiskFullError(f"no space left writing {path} ({format_bytes(size)}; "
                         f"{format_bytes(free_bytes(path))} free on its disk)")


def free_bytes(path: str | os.PathLike) -> int:
    """Free space on the disk that holds `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike, fix: str = "") -> Any:
    """A JSON file; a damaged one raises CorruptFileError naming the file, the line and `fix`."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not text"
        raise CorruptFileError(f"{path} is not valid JSON ({where})" + (f"; {fix}" if fix else "")) from None


# ---------------------------------------------------------------- safetensors

def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None, *, sync: bool = True) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, _canonical_header(_serialize(tensors, metadata)), sync=sync)


def _serialize(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> bytes:
    """safetensors bytes, through safetensors.numpy where numpy has every dtype: the same bytes
    as safetensors.torch (tests/test_store.py) at a fifth of its overhead per file, which a
    phase diagram's checkpoints pay hundreds of thousands of times (docs/benchmarks.md)."""
    try:
        arrays = {k: v.numpy() for k, v in tensors.items()}
    except TypeError:  # bfloat16 and the other dtypes numpy lacks
        return st_save(tensors, metadata=metadata)
    return np_save(arrays, metadata=metadata)


CHECKSUM = "data_crc32"   # the metadata key: CRC-32 of the tensor bytes, checked on every load


def _canonical_header(data: bytes) -> bytes:
    """Rewrite the JSON header with sorted keys (safetensors orders metadata keys arbitrarily,
    and we want a re-run to produce identical bytes), adding the tensor bytes' checksum: a
    safetensors header says nothing of its data, so bytes damaged on disk would load as other
    weights."""
    n = struct.unpack("<Q", data[:8])[0]
    parsed = json.loads(data[8: 8 + n])
    parsed.setdefault("__metadata__", {})[CHECKSUM] = f"{zlib.crc32(data[8 + n:]):08x}"
    header = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(header)) + header + data[8 + n:]


def load_tensors(path: str | os.PathLike, hint: str = "") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file, checking first that it is whole; returns (tensors, metadata)."""
    path = Path(path)
    data = path.read_bytes()
    expected = _safetensors_size(data)
    fix = f"; {hint}" if hint else ""
    if expected is None:
        raise CorruptFileError(f"{path.name} is not a safetensors file or its header is damaged "
                               f"({len(data)} bytes){fix}")
    if expected != len(data):
        raise CorruptFileError(f"{path.name} is truncated (expected {expected} bytes, found "
                               f"{len(data)}){fix}")
    n = struct.unpack("<Q", data[:8])[0]
    metadata = json.loads(data[8: 8 + n]).get("__metadata__", {})
    if CHECKSUM in metadata and metadata[CHECKSUM] != f"{zlib.crc32(data[8 + n:]):08x}":
        raise CorruptFileError(f"{path.name} is damaged (its tensor bytes do not match the checksum written with "
                               f"them){fix}")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types
        raise CorruptFileError(f"{path.name} could not be read ({e}){fix}") from None
    return tensors, {k: v for k, v in metadata.items() if k != CHECKSUM}


def _safetensors_size(data: bytes) -> int | None:
    """The file size its header promises, or None when the header itself is unreadable."""
    if len(data) < 8:
        return None
    n = struct.unpack("<Q", data[:8])[0]
    if n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8: 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0)


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


def directory_bytes(path: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


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
        durable with the next resume state or status, not on its own; an fsync per file was a
        fifth of a stacked group's checkpointing (docs/benchmarks.md). A machine crash can then
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
                raise _full(e, path, size) from None

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

    def _repr_html_(self) -> str:
        """In a notebook: the run's key facts and its training curves."""
        from grokscope.report.notebook import run_html

        return run_html(self)

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
        """The metrics table as columns: {"step": int array, "train_loss": float array, ...}."""
        return metrics_columns(read_metrics_rows(self.path / METRICS))

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

"""The run directory (DESIGN.md, "Contract: run directory"): atomic files, checkpoints, metrics,
resume state, and `load_run`.

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
import io
import json
import os
import struct
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from grokscope.config import RunConfig
from grokscope.errors import CorruptFileError, UsageError

METRIC_COLUMNS = ("step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr")
MEMORIZED, GENERALIZED = 0.99, 0.99
LOSS_FRACTION = 0.1  # regression: memorized/generalized when the loss is 10% of its initial value


# ---------------------------------------------------------------- atomic files

def _file_mode() -> int:
    """0o666 less the process umask: what open() would give, not mkstemp's private 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temp files a killed writer left behind (`.<name>.<random>.tmp`: never mistaken for a
    finished file, but clutter); called when a run is resumed."""
    for tmp in Path(run_dir).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise CorruptFileError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


# ---------------------------------------------------------------- safetensors

def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, _canonical_header(st_save(tensors, metadata=metadata)))


def _canonical_header(data: bytes) -> bytes:
    """Rewrite the JSON header with sorted keys: safetensors orders metadata keys arbitrarily,
    and we want a re-run to produce identical bytes."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.dumps(json.loads(data[8: 8 + n]), sort_keys=True, separators=(",", ":")).encode()
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
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types
        raise CorruptFileError(f"{path.name} could not be read ({e}){fix}") from None
    header = json.loads(data[8: 8 + struct.unpack("<Q", data[:8])[0]])
    return tensors, header.get("__metadata__", {})


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

def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def first_step_at_least(steps: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    hits = np.nonzero(values >= threshold)[0]
    return int(steps[hits[0]]) if hits.size else None


def transition_thresholds(regression: bool) -> tuple[str, str]:
    if regression:
        return (f"train loss <= {LOSS_FRACTION:g} x its initial value",
                f"test loss <= {LOSS_FRACTION:g} x its initial value")
    return f"train acc >= {MEMORIZED:.0%}", f"test acc >= {GENERALIZED:.0%}"


def transition_steps(metrics: dict[str, np.ndarray]) -> tuple[int | None, int | None]:
    """(memorization step, generalization step): accuracy >= 99% for classifiers; for regression
    (accuracy all NaN) the loss falling to 10% of its first value."""
    steps = np.asarray(metrics["step"])
    if not len(steps):
        return None, None
    out = []
    for split, threshold in (("train", MEMORIZED), ("test", GENERALIZED)):
        acc = np.asarray(metrics[f"{split}_acc"], dtype=np.float64)
        if np.isfinite(acc).any():
            out.append(first_step_at_least(steps, np.nan_to_num(acc, nan=-1.0), threshold))
        else:
            loss = np.asarray(metrics[f"{split}_loss"], dtype=np.float64)
            ok = np.isfinite(loss)
            if not ok.any():
                out.append(None)
                continue
            start = loss[ok][0]
            out.append(first_step_at_least(steps, -np.nan_to_num(loss, nan=np.inf), -LOSS_FRACTION * start))
    return out[0], out[1]


def format_metrics(rows: list[tuple]) -> str:
    out = io.StringIO()
    out.write(",".join(METRIC_COLUMNS) + "\n")
    for row in rows:
        out.write(",".join([str(row[0])] + [repr(float(v)) for v in row[1:]]) + "\n")
    return out.getvalue()


def read_metrics_rows(path: Path) -> list[tuple]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        rows = []
        for line in reader:
            if len(line) != len(header):
                break  # a row cut short by a crash: everything after it is recomputed
            rows.append((int(line[0]), *map(float, line[1:])))
    return rows


class Run:
    """A run directory on disk. `run.steps`, `run.metrics`, `run.model(step)`, `run.task`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.info = read_json(self.path / "run.json")
        self.config = RunConfig.from_dict(self.info["config"])

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, steps={len(self.steps)})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

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
        rows = read_metrics_rows(self.path / "metrics.csv")
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(METRIC_COLUMNS))
        columns = {name: table[:, i] for i, name in enumerate(METRIC_COLUMNS)}
        columns["step"] = columns["step"].astype(np.int64)
        return columns

    @property
    def memorization_step(self) -> int | None:
        return transition_steps(self.metrics)[0]

    @property
    def generalization_step(self) -> int | None:
        return transition_steps(self.metrics)[1]

    @cached_property
    def task(self):
        from grokscope.tasks import build_task

        return build_task(self.config).with_split(read_json(self.path / "split.json"))

    def new_model(self) -> torch.nn.Module:
        from grokscope.models import build_model

        return build_model(self.config, self.task)

    def state_dict(self, step: int) -> dict[str, torch.Tensor]:
        path = self.checkpoint_path(step)
        if not path.exists():
            near = ", ".join(map(str, self.steps[:5]))
            raise UsageError(f"run {self.name} has no checkpoint at step {step}; "
                             f"checkpointed steps start {near} ... (see run.steps)")
        tensors, _ = load_tensors(path, hint=f"re-run `grokscope train --resume {self.path}`")
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
    if not (path / "run.json").is_file():
        what = "does not exist" if not path.exists() else "is not a grokscope run (no run.json)"
        raise UsageError(f"{path} {what}; pass a directory written by `grokscope train`")
    return Run(path)

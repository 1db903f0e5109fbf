"""Files written so that a crash never leaves half of one: atomic writes (a temporary name, fsync,
rename), JSON and safetensors read back with one-line errors naming the damage, and the disk-size
helpers. Every module that writes a file goes through here; the run directory's layout is
`store`'s alone.

Nothing is unpickled: tensors are safetensors (with a checksum of their bytes in the header), the
rest JSON and CSV.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grokscope.errors import CorruptFileError, DiskFullError

if TYPE_CHECKING:   # torch and safetensors load where tensors are written or read: tables, specs and
    import torch  # the report write only JSON and CSV through here


# ---------------------------------------------------------------- atomic files

def _file_mode() -> int:
    """0o666 less the process umask: what open() would give, not mkstemp's private 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


_SYNC = [True]   # the default of `sync`, changed for a block by `durable_writes`


@contextmanager
def durable_writes(enabled: bool) -> Iterator[None]:
    """Within the block, atomic writes that do not say otherwise fsync (True) or not (False). A
    live analysis writes without: its files can all be computed again, and an fsync waits for the
    file system's journal commit, which a training process writing beside it then waits for too
    (`bench/live.py`, docs/benchmarks.md)."""
    _SYNC.append(enabled)
    try:
        yield
    finally:
        _SYNC.pop()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sync: bool | None = None) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it over `path`. A full disk
    (or a quota or file-size limit) raises DiskFullError and leaves the old file as it was.
    sync=False leaves the fsync to the caller (`fsync_file`): the rename still makes the file
    whole or absent for any process that reads it, only a machine crash can lose it. None: the
    default, True unless `durable_writes(False)` says otherwise."""
    path = Path(path)
    sync = _SYNC[-1] if sync is None else sync
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise disk_full_error(e, path, len(data)) from None
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
            raise disk_full_error(e, path, len(data)) from None
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


def disk_full_error(error: OSError, path: Path, size: int) -> OSError:
    """A DiskFullError naming the file and the free space, for an OSError that says the disk is
    full (the error itself otherwise)."""
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
    as safetensors.torch (tests/test_store.py) at a fraction of its overhead per file
    (`bench/checkpoint_io.py`, docs/benchmarks.md), which a
    phase diagram's checkpoints pay hundreds of thousands of times (docs/benchmarks.md)."""
    from safetensors.numpy import save as np_save
    from safetensors.torch import save as st_save

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
    from safetensors.torch import load as st_load

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


def directory_bytes(path: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

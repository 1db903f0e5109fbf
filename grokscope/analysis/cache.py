"""The analysis cache, `analyses/<run>/.cache/`: probe results keyed by (checkpoint content hash,
probe name, version, parameters, what the probe read beyond the checkpoint: `run_inputs`), and the checkpoint hashes remembered by (size, mtime) so a
re-run reads no checkpoint it has hashed before. A damaged entry is recomputed, never trusted."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.errors import CorruptFileError
from grokscope.files import atomic_write_bytes, atomic_write_json, read_json
from grokscope.probes.base import Probe
from grokscope.store import Run


def checkpoint_hashes(run: Run, steps: list[int], cache_dir: Path) -> dict[int, str]:
    """sha256 of each checkpoint file, remembered by (size, mtime) so re-runs do not re-read."""
    index_path = cache_dir / "hashes.json"
    try:
        index = read_json(index_path) if index_path.exists() else {}
    except CorruptFileError:
        index = {}  # a damaged index is rebuilt by hashing again
    if not isinstance(index, dict):
        index = {}
    out, changed = {}, False
    for step in steps:
        path = run.checkpoint_path(step)
        st = path.stat()
        entry = index.get(path.name)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
            out[step] = entry[2]
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        index[path.name] = [st.st_size, st.st_mtime_ns, digest]
        out[step] = digest
        changed = True
    if changed:
        atomic_write_json(index_path, index)
    return out


def run_key(inputs: Any) -> str:
    """A probe's `run_inputs` as a cache-name part ("" when it has none)."""
    if inputs is None:
        return ""
    return "-" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cache_path(cache_dir: Path, probe: Probe, ckpt_hash: str, key: str = "") -> Path:
    """`key`: `run_key(probe.run_inputs(...))`, what the result depends on beyond its checkpoint."""
    return cache_dir / probe.name / f"{ckpt_hash[:20]}-{probe.cache_key()}{key}.json"


def cache_read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
        arrays = {}
        if entry.get("has_arrays"):
            with np.load(path.with_suffix(".npz")) as data:
                arrays = {k: data[k] for k in data.files}
        entry["arrays"] = arrays
        return entry
    except Exception:  # zip, JSON, key or shape errors alike: a damaged entry is recomputed
        return None


def cache_write(path: Path, result: dict[str, Any]) -> None:
    arrays = result.get("arrays") or {}
    if arrays:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
    entry = {k: v for k, v in result.items() if k != "arrays"}
    entry["has_arrays"] = bool(arrays)
    atomic_write_json(path, entry)

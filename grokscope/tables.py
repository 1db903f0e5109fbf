"""The analysis directory's files (DESIGN.md, "Contract: analysis output"), and tidy tables.

A table is a dict of equal-length numpy columns, `step` first, stored as CSV (`<probe>.csv`).
This module also owns the names of `manifest.json` (what every probe did), the run-scope
results (`<probe>.json`, e.g. `phases.json`) and the landscape table (`<dir>/landscape.csv`,
written by `grokscope landscape`, read by the `landscape` probe). Figure specs are `specs`' files.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.errors import CorruptFileError, UsageError
from grokscope.files import atomic_write_bytes, atomic_write_json, read_json

Table = dict[str, np.ndarray]


def rows_to_table(rows: list[tuple[int, dict[str, Any]]]) -> Table:
    """[(step, {column: value})] -> columns in order of first appearance; missing cells NaN / ''."""
    columns: dict[str, None] = {}
    for _, row in rows:
        for key in row:
            columns.setdefault(key, None)
    table: Table = {"step": np.array([s for s, _ in rows], dtype=np.int64)}
    for col in columns:
        values = [row.get(col) for _, row in rows]
        if all(v is None or isinstance(v, (int, float, np.floating, np.integer, bool)) for v in values):
            table[col] = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        else:
            table[col] = np.array(["" if v is None else str(v) for v in values], dtype=object)
    return table


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else repr(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def write_table(path: Path, table: Table) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cols = list(table)
    writer.writerow(cols)
    for i in range(len(table[cols[0]]) if cols else 0):
        writer.writerow([_fmt(table[c][i]) for c in cols])
    atomic_write_bytes(path, out.getvalue().encode())


def read_table(path: Path, fix: str = "delete it and re-run the command that wrote it") -> Table:
    """A tidy table. Structural damage (no header, a row with more cells than the header, a step
    that is not an integer) raises CorruptFileError naming the file, the line and `fix`; a column
    holding anything but numbers is read as text."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorruptFileError(f"{path} is not a CSV table ({e}); {fix}") from None
    if not header:
        raise CorruptFileError(f"{path} is empty; {fix}")
    for number, row in enumerate(rows, start=2):
        if len(row) > len(header):
            raise CorruptFileError(f"{path} line {number} has {len(row)} cells for {len(header)} columns; {fix}")
        if header[0] == "step" and row and not row[0].lstrip("-").isdigit():
            raise CorruptFileError(f"{path} line {number} has step {row[0]!r}, not an integer; {fix}")
    table: Table = {}
    for j, col in enumerate(header):
        raw = [r[j] if j < len(r) else "" for r in rows]
        try:
            values = np.array([float(v) if v != "" else np.nan for v in raw], dtype=np.float64)
        except ValueError:
            table[col] = np.array(raw, dtype=object)
            continue
        table[col] = values.astype(np.int64) if col == "step" else values
    return table


LANDSCAPE_TABLE = "landscape.csv"


def landscape_table_path(path: str | Path) -> Path:
    path = Path(path)
    return path / LANDSCAPE_TABLE if path.is_dir() or not path.suffix else path


def read_landscape(path: str | Path) -> Table:
    """A landscape directory's table (or the CSV itself)."""
    csv_path = landscape_table_path(path)
    if not csv_path.exists():
        raise UsageError(f"{csv_path} does not exist; make it with `grokscope landscape --preset ... --out {path}`")
    return read_table(csv_path, f"re-run `grokscope landscape` with --out {path} (finished runs are reused)")


# ---------------------------------------------------------------- the analysis directory

MANIFEST = "manifest.json"


def table_path(out: str | Path, probe: str) -> Path:
    return Path(out) / f"{probe}.csv"


def has_manifest(out: str | Path) -> bool:
    return (Path(out) / MANIFEST).exists()


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of an analysis directory ({} where there is none yet)."""
    path = Path(out) / MANIFEST
    if not path.exists():
        return {}
    manifest = read_json(path, "delete it and re-run `grokscope analyze` (cached results are kept)")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("probes", {}), dict):
        raise CorruptFileError(f"{path} is not a manifest; delete it and re-run `grokscope analyze`")
    return manifest


def write_manifest(out: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(out) / MANIFEST, manifest)


def result_path(out: str | Path, probe: str) -> Path:
    """Where a run-scope probe's result goes (`phases.json`)."""
    return Path(out) / f"{probe}.json"


def read_result(out: str | Path, probe: str) -> dict[str, Any]:
    path = result_path(out, probe)
    return read_json(path, "delete it and re-run `grokscope analyze`") if path.exists() else {}


def write_result(out: str | Path, probe: str, value: dict[str, Any]) -> Path:
    path = result_path(out, probe)
    atomic_write_json(path, value)
    return path


@contextmanager
def analysis_lock(out: str | Path, announce: bool = True):
    """Hold `<analysis dir>/.cache/analyze.lock` while analyzing or building the report: a second
    analysis of the same directory waits for the first and then finds its results in the cache,
    and two report builds never interleave their manifest updates. The lock is an flock, which
    the kernel releases when its holder exits, killed or not, so a lock is never stale. (No lock
    where fcntl does not exist.)"""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    cache_dir = Path(out) / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "analyze.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            if announce:
                print(f"{out}: waiting for the analysis in progress (pid {holder}) to finish; "
                      "its results will be reused", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

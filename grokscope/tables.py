"""The analysis directory's files (DESIGN.md, "Contract: analysis output"), and tidy tables.

A table is a dict of equal-length numpy columns, `step` first, stored as CSV (`<probe>.csv`).
This module also owns the names of `manifest.json` (what every probe did), the run-scope
results (`<probe>.json`, e.g. `phases.json`) and the landscape table (`<dir>/landscape.csv`,
written by `grokscope landscape`, read by the `lu` probe). Figure specs are `specs`' files.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.errors import UsageError
from grokscope.store import atomic_write_bytes, atomic_write_json, read_json

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


def read_table(path: Path) -> Table:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
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
    return read_table(csv_path)


# ---------------------------------------------------------------- the analysis directory

MANIFEST = "manifest.json"


def table_path(out: str | Path, probe: str) -> Path:
    return Path(out) / f"{probe}.csv"


def has_manifest(out: str | Path) -> bool:
    return (Path(out) / MANIFEST).exists()


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of an analysis directory ({} where there is none yet)."""
    path = Path(out) / MANIFEST
    return read_json(path) if path.exists() else {}


def write_manifest(out: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(out) / MANIFEST, manifest)


def result_path(out: str | Path, probe: str) -> Path:
    """Where a run-scope probe's result goes (`phases.json`)."""
    return Path(out) / f"{probe}.json"


def read_result(out: str | Path, probe: str) -> dict[str, Any]:
    path = result_path(out, probe)
    return read_json(path) if path.exists() else {}


def write_result(out: str | Path, probe: str, value: dict[str, Any]) -> Path:
    path = result_path(out, probe)
    atomic_write_json(path, value)
    return path

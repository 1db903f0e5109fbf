"""A sweep's phase table: Liu et al. 2022's phase of every run (`measures.transitions.classify_phase`)
and the majority phase of every grid cell over seeds, written as phases.csv and phase_diagram.csv."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.measures.transitions import SWEEP_PHASES as PHASES
from grokscope.measures.transitions import classify_phase
from grokscope.store import Run
from grokscope.tables import write_table


def phase_table(run_dir: Path, points, *, threshold: float = 0.9, lag: int = 1000) -> dict[str, np.ndarray]:
    """One row per sweep point: name, preset, coordinates, seed, status, the two steps, the lag,
    final accuracies and the phase ("" for runs without metrics)."""
    rows = []
    for p in points:
        path = run_dir / p.name
        row: dict[str, Any] = {"name": p.name, "preset": p.preset, **p.coords, "seed": p.seed}
        try:
            run = Run(path)
            status, m = run.status, run.metrics
        except (FileNotFoundError, ValueError, OSError):
            status, m = "missing", None
        row["status"] = status
        if status == "diverged":
            row.update(train_step=None, test_step=None, lag=None, final_train_acc=None,
                       final_test_acc=None, phase="diverged",
                       diverged_step=run.info.get("diverged_at_step"))
        elif m is not None and len(m["step"]) and not np.all(np.isnan(m["train_acc"])):
            phase, t_train, t_test = classify_phase(m["step"], m["train_acc"], m["test_acc"],
                                                    threshold=threshold, lag=lag)
            if status != "complete" and phase in ("memorization", "confusion"):
                phase = ""  # not decided before the step budget is spent
            row.update(train_step=t_train, test_step=t_test,
                       lag=(t_test - t_train) if t_train is not None and t_test is not None else None,
                       final_train_acc=float(m["train_acc"][-1]), final_test_acc=float(m["test_acc"][-1]),
                       phase=phase)
        else:
            row.update(train_step=None, test_step=None, lag=None, final_train_acc=None,
                       final_test_acc=None, phase="")
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = {}
    for c in columns:
        values = [r.get(c) for r in rows]
        if all(v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            table[c] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            table[c] = np.array(["" if v is None else str(v) for v in values], dtype=object)
    return table


def cells(table: dict[str, np.ndarray], keys: list[str]) -> list[dict[str, Any]]:
    """Aggregate over seeds: per grid cell the majority phase (ties: the order of PHASES), the
    count of each phase, and the mean steps to generalize over runs that generalized."""
    groups: dict[tuple, list[int]] = {}
    for i in range(len(table["name"])):
        groups.setdefault(tuple(table[k][i] for k in ["preset", *keys]), []).append(i)
    out = []
    for coords, idx in groups.items():
        phases = [table["phase"][i] for i in idx if table["phase"][i]]
        counts = Counter(phases)
        majority = max(PHASES, key=lambda ph: (counts[ph], -PHASES.index(ph))) if phases else ""
        test_steps = table["test_step"][idx]
        done = test_steps[np.isfinite(test_steps)]
        out.append({"preset": coords[0], **dict(zip(keys, coords[1:])), "phase": majority,
                    **{f"n_{ph}": counts[ph] for ph in PHASES}, "runs": len(idx),
                    "mean_test_step": float(done.mean()) if len(done) else float("nan"),
                    "generalized": len(done)})
    return out




def _column(values: list) -> np.ndarray:
    if any(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def write_phase_tables(out: Path, points, keys: list[str], *, threshold: float = 0.9,
                       lag: int = 1000) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """phases.csv (one row per run) and phase_diagram.csv (one row per cell); returns both."""
    table = phase_table(out / "runs", points, threshold=threshold, lag=lag)
    write_table(out / "phases.csv", table)
    cell_rows = cells(table, keys)
    cols = list(cell_rows[0]) if cell_rows else []
    write_table(out / "phase_diagram.csv", {c: _column([r[c] for r in cell_rows]) for c in cols})
    return table, cell_rows

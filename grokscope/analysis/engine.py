"""The analysis engine: run probes over a run's checkpoints (DESIGN.md, "Contract: analysis output").

    analyses/<run>/<probe>.csv     one row per checkpoint: step, then the probe's scalars
    analyses/<run>/<probe>.npz     arrays, keyed "<array>/step_XXXXXXXX"
    analyses/<run>/<probe>.spec.json  the probe's figures and summary claims, as data (`specs`)
    analyses/<run>/manifest.json   status, reason, timing and artifacts of every probe
    analyses/<run>/phases.json     memorization/generalization steps and phases
    analyses/<run>/.cache/         results keyed by (checkpoint hash, probe, version, params, run inputs)

Each checkpoint is loaded once and every requested probe runs on it; results are cached, so a
re-run computes only what is new; a probe failing on one checkpoint is recorded and the rest
goes on; `jobs > 1` spreads checkpoints over processes.
"""

from __future__ import annotations

import io
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.analysis.cache import cache_path, cache_read, cache_write, checkpoint_hashes, run_key
from grokscope.analysis.selection import Selected, make_probes, parse_probe_list, select_steps
from grokscope.console import ProgressLine
from grokscope.errors import CorruptFileError, UsageError
from grokscope.files import atomic_write_bytes
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, resolve_probe, unmet_need
from grokscope.specs import write_spec
from grokscope.store import Run, load_run
from grokscope.tables import (
    Table,
    analysis_lock,
    read_manifest,
    read_table,
    rows_to_table,
    table_path,
    write_manifest,
    write_result,
    write_table,
)
from grokscope.version import __version__


def default_out(run: Run) -> Path:
    return Path("analyses") / run.name


# ---------------------------------------------------------------- measuring

def _normalise(value: dict | ProbeResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if isinstance(value, ProbeResult):
        scalars, arrays = value.scalars, value.arrays
    elif isinstance(value, dict):
        scalars, arrays = value, {}
    else:
        raise TypeError(f"measure() returned {type(value).__name__}; return a dict of scalars or a ProbeResult")
    clean = {}
    for k, v in scalars.items():
        if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
            v = v.item()
        if not isinstance(v, (int, float, str, bool)):
            raise TypeError(f"column {k!r} is a {type(v).__name__}; scalars must be numbers or strings "
                            "(put arrays in ProbeResult.arrays)")
        clean[k] = float(v) if isinstance(v, (int, bool)) else v
    return clean, {k: np.asarray(v) for k, v in arrays.items()}


def measure_checkpoint(run: Run, step: int, probes: list[Probe], device: str = "cpu",
                       run_memo: dict | None = None) -> dict[str, dict[str, Any]]:
    """Load checkpoint `step` once and run every probe on it; failures are returned, not raised."""
    results: dict[str, dict[str, Any]] = {}
    try:
        model = run.model(step, device=device)
    except Exception as e:
        error = f"{type(e).__name__}: {e}" if not hasattr(e, "exit_code") else str(e)
        return {p.name: {"status": "failed", "step": step, "error": error, "seconds": 0.0} for p in probes}
    ctx = ProbeContext(run, step, model, device, run_memo)
    for probe in probes:
        t0 = time.perf_counter()
        try:
            scalars, arrays = _normalise(probe.measure(ctx))
            results[probe.name] = {"status": "ok", "step": step, "scalars": scalars, "arrays": arrays,
                                   "seconds": time.perf_counter() - t0}
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)[-1]
            results[probe.name] = {"status": "failed", "step": step,
                                   "error": f"{type(e).__name__}: {e} (at {Path(tb.filename).name}:{tb.lineno})",
                                   "seconds": time.perf_counter() - t0}
    return results


_WORKER: dict[str, Any] = {}


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _worker_measure(run_path: str, step: int, specs: list[tuple[str, dict]], device: str):
    key = (run_path, tuple((s, json.dumps(p, sort_keys=True)) for s, p in specs))
    if _WORKER.get("key") != key:
        run = load_run(run_path)
        probes = [resolve_probe(s)[0](**p) for s, p in specs]
        _WORKER.update(key=key, run=run, probes=probes, memo={})
    return measure_checkpoint(_WORKER["run"], step, _WORKER["probes"], device, _WORKER["memo"])


# ---------------------------------------------------------------- the engine

def analyze(run: Run | str | os.PathLike, probes=None, *, out: str | os.PathLike | None = None,
            every: int | None = None, steps: str | list[int] | None = None, count: int | None = None,
            jobs: int = 1, device: str = "cpu", params: dict[str, dict[str, Any]] | None = None,
            progress: bool = True, report: bool = True, provisional: bool = False) -> "Analysis":
    """Run probes over a run's checkpoints; returns {probe name: table} (an `Analysis`: a dict
    that knows its directory and shows a summary in a notebook). See the module docstring.
    `steps`: "A:B", or a list of checkpoint steps (what a live analysis has measured so far).
    `report=True` also builds report.md/html from what was written (`report.build_report`).
    `provisional=True` (a live analysis): a cached result measured against other run inputs (an
    older final checkpoint) stands in where none matches today's (`provisional_entry`)."""
    run = run if isinstance(run, Run) else load_run(run)
    out = Path(out) if out is not None else default_out(run)
    selected = make_probes(parse_probe_list(probes) if probes is None or isinstance(probes, str)
                           or all(isinstance(p, str) for p in probes) else probes, params)
    if not run.steps:
        raise UsageError(f"run {run.path} has no checkpoints yet")
    _ = run.task  # a damaged split.json stops the analysis here, in one line, not at every checkpoint
    chosen = select_steps(run.steps, every, steps, count)
    out.mkdir(parents=True, exist_ok=True)
    with analysis_lock(out, announce=progress):
        tables = _analyze_locked(run, selected, chosen, out, jobs, device, progress, provisional)
    if report:
        from grokscope.report.document import build_report

        build_report(out, run)
    return Analysis(tables, out)


class Analysis(dict):
    """{probe name: table}, with `path` (the analysis directory); in a notebook it displays the
    summary, each probe's status and the key figures."""

    def __init__(self, tables: dict[str, Table], path: Path):
        super().__init__(tables)
        self.path = Path(path)

    def _repr_html_(self) -> str:
        from grokscope.report.notebook import analysis_html

        return analysis_html(self.path)


def _analyze_locked(run: Run, selected: list[Selected], chosen: list[int], out: Path, jobs: int,
                    device: str, progress: bool, provisional: bool = False) -> dict[str, Table]:
    try:
        entries = read_manifest(out).get("probes", {})
    except CorruptFileError:
        entries = {}  # rewritten below from what this analysis runs; cached results are kept
    t_start = time.perf_counter()

    active = []
    plain = run.new_model() if run.config.model.name == "custom" else None  # a user's model
    for sel in selected:
        if sel.probe.scope != "checkpoint":
            continue
        ok = sel.probe.applies_to(run)
        if ok is True and plain is not None:
            ok = unmet_need(sel.probe, plain) or True
        if ok is True:
            active.append(sel)
        else:
            entries[sel.probe.name] = _entry(sel, "skipped", reason=ok if isinstance(ok, str)
                                             else "does not apply to this run")
    results = measure_all(run, active, chosen, out / ".cache", jobs, device, progress, provisional)
    tables = {}
    for sel in active:
        table, entries[sel.probe.name] = write_probe_outputs(out, sel, chosen, results[sel.probe.name])
        if table is not None:
            tables[sel.probe.name] = table
    entries.update(run_scope_probes(run, selected, out, tables))

    write_manifest(out, {
        "run": str(run.path), "grokscope_version": __version__,
        "checkpoints": chosen, "probes": entries,
        "seconds": round(time.perf_counter() - t_start, 3),
    })
    return tables


def cached_steps(run: Run | str | os.PathLike, probes, steps: list[int], out: str | os.PathLike,
                 params: dict[str, dict[str, Any]] | None = None, device: str = "cpu",
                 provisional: bool = False) -> set[int]:
    """The steps among `steps` whose result the cache in `out` holds for every probe that applies
    (keyed as `analyze` keys them, so a result measured against an older final checkpoint is not
    counted unless `provisional`): what a live analysis still has to measure is `steps` less these."""
    run = run if isinstance(run, Run) else load_run(run)
    selected = make_probes(parse_probe_list(probes) if probes is None or isinstance(probes, str)
                           or all(isinstance(p, str) for p in probes) else probes, params)
    active = [s for s in selected if s.probe.scope == "checkpoint" and s.probe.applies_to(run) is True]
    if not active or not steps:
        return set(steps)
    cache_dir = Path(out) / ".cache"
    hashes = checkpoint_hashes(run, sorted({*steps, run.steps[0], run.steps[-1]}), cache_dir)
    keys, broken = run_keys(run, active, hashes, device, {})
    others = {s.probe.name: provisional_index(cache_dir, s.probe) for s in active} if provisional else {}

    def held(sel: Selected, step: int) -> bool:
        path = cache_path(cache_dir, sel.probe, hashes[step], keys[sel.probe.name])
        return path.exists() or bool(others.get(sel.probe.name, {}).get(cache_path(
            cache_dir, sel.probe, hashes[step]).stem))

    return {step for step in steps if all(s.probe.name in broken or held(s, step) for s in active)}


def provisional_index(cache_dir: Path, probe: Probe) -> dict[str, list[Path]]:
    """{unkeyed cache name: that checkpoint's entries for `probe` under any run inputs, newest
    first}: one directory listing for a whole live poll."""
    index: dict[str, list[Path]] = {}
    folder = cache_dir / probe.name
    if not folder.is_dir():
        return index
    suffix = f"-{probe.cache_key()}"
    for path in folder.glob("*.json"):
        stem = path.stem
        cut = stem.find(suffix)
        if cut >= 0:
            index.setdefault(stem[:cut + len(suffix)], []).append(path)
    for paths in index.values():
        paths.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return index


def provisional_entry(index: dict[str, list[Path]], cache_dir: Path, probe: Probe, ckpt_hash: str) -> dict | None:
    """The newest readable result for this checkpoint and probe under any run inputs."""
    for path in index.get(cache_path(cache_dir, probe, ckpt_hash).stem, []):
        entry = cache_read(path)
        if entry is not None:
            return entry
    return None


def measure_all(run: Run, active: list[Selected], chosen: list[int], cache_dir: Path, jobs: int,
                device: str, progress: bool, provisional: bool = False) -> dict[str, dict[int, dict[str, Any]]]:
    """{probe: {step: result}} for every active probe and chosen step: from the cache where it
    holds the result (or, `provisional`, a result under other run inputs), else measured (in
    `jobs` processes when more than one) and cached."""
    hashes = checkpoint_hashes(run, sorted({*chosen, run.steps[0], run.steps[-1]}), cache_dir)
    memo: dict = {}
    keys, broken = run_keys(run, active, hashes, device, memo)
    results: dict[str, dict[int, dict[str, Any]]] = {s.probe.name: {} for s in active}
    todo: dict[int, list[Selected]] = {}
    others = {s.probe.name: provisional_index(cache_dir, s.probe) for s in active} if provisional else {}
    for step in chosen:
        for sel in active:
            if sel.probe.name in broken:
                results[sel.probe.name][step] = {"status": "failed", "step": step, "seconds": 0.0,
                                                 "error": broken[sel.probe.name]}
                continue
            cached = cache_read(cache_path(cache_dir, sel.probe, hashes[step], keys[sel.probe.name]))
            if cached is None and provisional:
                cached = provisional_entry(others[sel.probe.name], cache_dir, sel.probe, hashes[step])
            if cached is not None:
                results[sel.probe.name][step] = {**cached, "cached": True}
            else:
                todo.setdefault(step, []).append(sel)

    bar = ProgressLine(len(todo), label="checkpoint", enabled=progress and bool(todo))
    done = 0

    def record(step: int, measured: dict[str, dict[str, Any]]) -> None:
        nonlocal done
        for sel in todo[step]:
            res = measured[sel.probe.name]
            results[sel.probe.name][step] = res
            if res["status"] == "ok":
                cache_write(cache_path(cache_dir, sel.probe, hashes[step], keys[sel.probe.name]), res)
        done += 1
        bar.update(done)

    if jobs > 1 and len(todo) > 1 and all(s.spec is not None for s in active):
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads,)) as pool:
            futures = {pool.submit(_worker_measure, str(run.path), step,
                                   [(s.spec, s.probe.params) for s in sels], device): step
                       for step, sels in todo.items()}
            for fut in as_completed(futures):
                record(futures[fut], fut.result())
    else:
        for step, sels in todo.items():
            record(step, measure_checkpoint(run, step, [s.probe for s in sels], device, memo))
    bar.update(done, force=True)
    bar.close()
    return results


def run_keys(run: Run, active: list[Selected], hashes: dict[int, str], device: str,
             memo: dict) -> tuple[dict[str, str], dict[str, str]]:
    """({probe: cache-name part of its `run_inputs`}, {probe: why its run_inputs failed}): what
    each result depends on beyond its checkpoint, read once per analysis (`memo` keeps what it
    loads, the final checkpoint for one, for the measuring that follows)."""
    ctx = ProbeContext(run, None, None, device, memo, hashes)
    keys, broken = {}, {}
    for sel in active:
        try:
            keys[sel.probe.name] = run_key(sel.probe.run_inputs(ctx))
        except Exception as e:
            broken[sel.probe.name] = f"run_inputs: {type(e).__name__}: {e}"
    return keys, broken


def write_probe_outputs(out: Path, sel: Selected, chosen: list[int],
                        per_step: dict[int, dict[str, Any]]) -> tuple[Table | None, dict[str, Any]]:
    """One probe's table (`<probe>.csv`), arrays (`<probe>.npz`) and report spec
    (`<probe>.spec.json`); returns the table and the probe's manifest entry."""
    name = sel.probe.name
    ok_rows = [(s, per_step[s]["scalars"]) for s in chosen if per_step[s]["status"] == "ok"]
    failures = [{"step": s, "error": per_step[s]["error"]} for s in chosen if per_step[s]["status"] != "ok"]
    artifacts, table = [], None
    if ok_rows:
        table = rows_to_table(ok_rows)
        write_table(table_path(out, name), table)
        artifacts.append(table_path(out, name).name)
        arrays = {f"{k}/step_{s:08d}": v for s, _ in ok_rows for k, v in per_step[s]["arrays"].items()}
        if arrays:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic_write_bytes(out / f"{name}.npz", buf.getvalue())
            artifacts.append(f"{name}.npz")
        artifacts.append(write_spec(out, report_spec(sel.probe)).name)
    reason = (f"failed on {len(failures)} of {len(chosen)} checkpoints: {failures[0]['error']}"
              if failures else "")
    entry = _entry(sel, "failed" if failures else "ok", reason=reason, failures=failures,
                   artifacts=artifacts, n_ok=len(ok_rows),
                   n_cached=sum(1 for s in chosen if per_step[s].get("cached")),
                   seconds=round(sum(per_step[s].get("seconds", 0.0) for s in chosen
                                     if not per_step[s].get("cached")), 4))
    return table, entry


def report_spec(probe: Probe):
    """The probe's report spec; a probe whose `figures()` fails gets the default figure."""
    from grokscope.specs import ReportSpec, default_figures

    try:
        return probe.report_spec()
    except Exception:  # a user's figures() must not lose the analysis
        return ReportSpec(probe.name, probe.description, figures=default_figures(probe.name))


def run_scope_probes(run: Run, selected: list[Selected], out: Path,
                     tables: dict[str, Table]) -> dict[str, dict[str, Any]]:
    """Run-scope probes see the tables; `phases` always runs (cheap, and the report shades with it)."""
    run_scope = [s for s in selected if s.probe.scope == "run"]
    if not any(s.probe.name == "phases" for s in run_scope):
        run_scope += make_probes(["phases"])
    entries = {}
    for sel in run_scope:
        t0 = time.perf_counter()
        try:
            value = sel.probe.measure_run(run, _all_tables(out, tables))
            path = write_result(out, sel.probe.name, value)
            entries[sel.probe.name] = _entry(sel, "ok", artifacts=[path.name],
                                             seconds=round(time.perf_counter() - t0, 4))
        except Exception as e:
            entries[sel.probe.name] = _entry(sel, "failed", reason=f"{type(e).__name__}: {e}")
    return entries


def _all_tables(out: Path, fresh: dict[str, Table]) -> dict[str, Table]:
    """Tables of this analysis directory: the ones just computed, else the CSVs on disk."""
    tables = dict(fresh)
    for path in out.glob("*.csv"):
        if path.stem not in tables and path.stem != "training":
            try:
                tables[path.stem] = read_table(path)
            except (OSError, ValueError, StopIteration):
                pass
    return tables


def _entry(sel: Selected, status: str, **extra: Any) -> dict[str, Any]:
    entry = {"status": status, "reason": extra.pop("reason", ""), "origin": sel.origin,
             "spec": sel.spec, "version": str(sel.probe.version), "params": sel.probe.params,
             "description": sel.probe.description}
    notes = getattr(sel.probe, "notes", "")
    if notes:
        entry["notes"] = notes
    entry.update(extra)
    entry.setdefault("artifacts", [])
    return entry

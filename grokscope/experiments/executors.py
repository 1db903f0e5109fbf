"""Where a sweep's units train: local worker processes, a Ray cluster, or a Slurm job array
through submitit. A unit is one run, or a group of compatible runs trained stacked
(`training.stacked`); every executor writes the same run directories."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.config import RunConfig
from grokscope.console import ProgressLine
from grokscope.errors import GrokscopeError, UsageError
from grokscope.experiments.grid import Point
from grokscope.files import atomic_write_json, read_json
from grokscope.store import Run, RunWriter, run_status
from grokscope.training import TrainingInterrupted
from grokscope.training.state import check_reusable


def plan_units(points: list[Point], run_dir: Path, jobs: int, vectorize: str,
               device: str = "cpu") -> list[dict]:
    """Cut the pending runs into units. A run that was interrupted goes on with the trainer that
    started it, in the same stacked group (so it ends bit-identical to an uninterrupted sweep).
    Fresh runs are stacked (when `vectorize` allows and it pays) in `jobs` groups of at least
    two, so every worker gets one, or in a multiple of `jobs` groups where `jobs` groups would
    outgrow the cache, or on a GPU a share of its memory (`stacked.max_group_size`); the rest
    train alone. Results do not depend on
    the grouping: a model's arithmetic is the same in a group of any size."""
    from grokscope.training.stacked import choose_vectorized, compatible_key, max_group_size

    for p in points:
        check_reusable(run_dir / p.name, p.config)
    pending = [p for p in points if run_status(run_dir / p.name) not in ("complete", "diverged")]
    unit = lambda members, stacked: {"vectorized": stacked and len(members) > 1, "runs": [
        (m.config.to_dict(), str(run_dir / m.name)) for m in members]}
    units, fresh = [], []
    resumed: dict[tuple, list[Point]] = {}
    for p in pending:
        path = run_dir / p.name
        # a run the stacked trainer started stays in its group, even a member killed before its
        # first resume state: trained alone or in another group it would not end bit-identical
        stacked_with = Run(path).info.get("stacked_with") if run_status(path) is not None else None
        if stacked_with:
            resumed.setdefault(tuple(stacked_with), []).append(p)
        elif RunWriter(path).resume_step() > 0:
            resumed.setdefault((p.name,), []).append(p)
        else:
            fresh.append(p)
    units += [unit(members, True) for members in resumed.values()]
    groups: dict[str | None, list[Point]] = {}
    for p in fresh:
        groups.setdefault(compatible_key(p.config) if vectorize != "never" else None, []).append(p)
    for key, members in groups.items():
        stacked = key is not None and (vectorize == "always" and len(members) > 1
                                       or vectorize == "auto" and choose_vectorized([m.config for m in members]))
        if stacked:
            parts = max(1, min(jobs, len(members) // 2))
            size = max_group_size(members[0].config, device)
            if len(members) > parts * size:  # groups past the cache: more of them, a multiple of jobs
                parts = math.ceil(len(members) / size / jobs) * jobs
            units += [unit([members[i] for i in chunk], True)
                      for chunk in np.array_split(np.arange(len(members)), parts)]
        else:
            units += [unit([m], False) for m in members]
    return units


# In a local worker process (`_run_local`): an event set once the sweep is stopping, after which
# the worker starts no further unit (a unit queued before Ctrl-C would otherwise train to its end).
_STOP = None


def _init_worker(stop) -> None:
    global _STOP
    _STOP = stop


def run_unit(unit: dict, threads: int = 1) -> list[str]:
    """Train one unit (in a worker process or a Ray task); returns its run directories."""
    if _STOP is not None and _STOP.is_set():
        return []  # the sweep is stopping: this unit is left for the rerun
    try:
        return _train_unit(unit, threads)
    except TrainingInterrupted:
        if _STOP is not None:
            _STOP.set()  # a signal reached this worker: no worker takes a new unit
        raise


def _train_unit(unit: dict, threads: int) -> list[str]:
    import torch

    from grokscope.training import TrainingDiverged, ensure_trained
    from grokscope.training.stacked import train_many

    if threads > 0:
        torch.set_num_threads(threads)
    configs = [RunConfig.from_dict(c) for c, _ in unit["runs"]]
    paths = [Path(p) for _, p in unit["runs"]]
    device = unit.get("device", "cpu")
    if unit["vectorized"]:
        status = unit.get("status")
        try:
            train_many(configs, paths, status_file=Path(status) if status else None, device=device)
        except TrainingDiverged:
            pass  # the group's one run diverged: its run.json says so, the phase table shows it
    else:
        for config, path in zip(configs, paths):
            try:
                ensure_trained(config, path, device=device)
            except TrainingDiverged:
                pass  # likewise: a diverged cell is a result, not a failed sweep
    return [str(p) for p in paths]


def _progress(units: list[dict], finished: set[int]) -> float:
    """Runs done, counting a stacked group in flight by the share of steps it has made."""
    done = 0.0
    for i, unit in enumerate(units):
        n = len(unit["runs"])
        if i in finished:
            done += n
        elif unit.get("status"):
            try:
                status = read_json(Path(unit["status"]))
                done += n * status["step"] / max(status["steps"], 1)
            except (FileNotFoundError, ValueError, OSError, KeyError):
                pass
    return done


def _run_local(units: list[dict], jobs: int, bar: ProgressLine, base: int) -> None:
    if jobs <= 1 or len(units) <= 1:
        for i, unit in enumerate(units):
            run_unit(unit, threads=0)
            bar.update(base + _progress(units, set(range(i + 1))), force=True)
        return
    from concurrent.futures import FIRST_COMPLETED, wait

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(stop,))
    try:
        futures = {pool.submit(run_unit, unit): i for i, unit in enumerate(units)}
        finished: set[int] = set()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
                finished.add(futures[future])
            bar.update(base + _progress(units, finished), force=bool(done))
    except BaseException:
        stop.set()
        # Ctrl-C in a terminal reaches the workers too; `kill -INT` on this process alone does
        # not: pass it on, so each worker flushes its resume state and stops now
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                os.kill(proc.pid, signal.SIGINT)
            except (OSError, AttributeError):
                pass
        pool.shutdown(wait=True, cancel_futures=True)  # workers flush their resume state first
        raise
    pool.shutdown()


def _run_ray(units: list[dict], address: str | None, bar: ProgressLine, base: int) -> None:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'grokscope[ray]' (or pip install ray)") from None
    ray.init(address=address, ignore_reinit_error=True)
    task = ray.remote(num_cpus=1)(run_unit)
    refs = {task.remote(unit): i for i, unit in enumerate(units)}
    pending, finished = list(refs), set()
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=5.0)
        for ref in ready:
            ray.get(ref)
            finished.add(refs[ref])
        bar.update(base + _progress(units, finished), force=bool(ready))


@dataclass
class SlurmOptions:
    """How each array task is submitted (`grokscope sweep --executor slurm`)."""

    partition: str | None = None
    time: float = 60                 # minutes per task; a task that runs out is requeued and resumes
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    max_parallel: int = 0            # at most this many tasks at once (0: Slurm's default)
    cluster: str = "slurm"           # "local": the same code path as real processes on this machine
    signal_delay_s: int = 90         # the timeout signal comes this long before the time limit
    mem_gb: float | None = None


class UnitTask:
    """A sweep unit as a Slurm array task. Checkpointable: when Slurm preempts it or its time
    runs out, submitit calls `checkpoint` and requeues the same unit, which resumes its runs
    from their run directories (at most `checkpoint.resume_seconds` of work is repeated)."""

    def __init__(self, threads: int = 1):
        self.threads = threads

    def __call__(self, unit: dict) -> list[str]:
        return run_unit(unit, threads=self.threads)

    def checkpoint(self, unit: dict):
        import submitit

        return submitit.helpers.DelayedSubmission(UnitTask(self.threads), unit)


def check_slurm(options: SlurmOptions) -> None:
    """Everything `--executor slurm` needs, checked before anything is planned or written."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("submitit") is None:
        raise UsageError("--executor slurm needs submitit: pip install 'grokscope[slurm]' (or pip install submitit)")
    if options.cluster not in ("slurm", "local"):
        raise UsageError(f"unknown --slurm-cluster {options.cluster!r}; choose slurm or local")
    if options.time <= 0 or options.cpus_per_task < 1 or options.gpus_per_task < 0:
        raise UsageError("--time must be positive, --cpus-per-task at least 1, --gpus-per-task at least 0")
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("--executor slurm: no Slurm here (sbatch not found); run on the cluster's login node, "
                         "or try the same path on this machine with --slurm-cluster local")


def _slurm_executor(out: Path, options: SlurmOptions):
    import submitit

    check_slurm(options)
    folder = out / ".slurm" / "%j"
    if options.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=options.time, gpus_per_node=options.gpus_per_task,
                                   signal_delay_s=options.signal_delay_s)
        return executor
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except Exception as e:  # no sbatch on this machine, for instance
        raise UsageError(f"cannot submit to Slurm here ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                         "run on the cluster's login node, or try the same path here with --slurm-cluster local"
                         ) from None
    params: dict[str, Any] = {"timeout_min": options.time, "cpus_per_task": options.cpus_per_task,
                              "gpus_per_node": options.gpus_per_task, "name": f"grokscope-{out.name}",
                              "slurm_signal_delay_s": options.signal_delay_s}
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.max_parallel:
        params["slurm_array_parallelism"] = options.max_parallel
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    executor.update_parameters(**params)
    return executor


def _check_no_live_jobs(out: Path, options: SlurmOptions) -> None:
    """Refuse to submit while an earlier submission of this sweep still runs: two tasks would
    train one run directory at once."""
    if options.cluster != "slurm" or not (out / ".slurm" / "jobs.json").exists():
        return
    import submitit

    live = []
    for job_id in read_json(out / ".slurm" / "jobs.json").get("jobs", []):
        try:
            state = submitit.SlurmJob(out / ".slurm" / "%j", job_id).state
        except Exception:
            continue
        if state in ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED"):
            live.append(job_id)
    if live:
        raise UsageError(f"tasks {', '.join(live[:3])} of an earlier submission of this sweep are still queued or "
                         "running; wait for them (squeue --me) or cancel them (scancel), then run the same command")


def _run_slurm(units: list[dict], out: Path, options: SlurmOptions, bar: ProgressLine, base: int) -> None:
    """Submit the units as one job array and wait for it. Interrupting the wait leaves the array
    running on the cluster; the same command later picks up what it finished."""
    _check_no_live_jobs(out, options)
    executor = _slurm_executor(out, options)
    jobs = executor.map_array(UnitTask(options.cpus_per_task), units)
    atomic_write_json(out / ".slurm" / "jobs.json", {"jobs": [job.job_id for job in jobs],
                                                     "cluster": options.cluster})
    finished: set[int] = set()
    try:
        while len(finished) < len(jobs):
            for i, job in enumerate(jobs):
                if i not in finished and job.done():
                    try:
                        job.result()
                    except Exception as e:
                        lines = [line for line in str(e).strip().splitlines() if line.strip()]
                        raise GrokscopeError(
                            f"array task {job.job_id} failed ({lines[-1][:200] if lines else type(e).__name__}; "
                            f"log: {job.paths.stderr}); run the same command again to resume it") from None
                    finished.add(i)
            bar.update(base + _progress(units, finished), force=True)
            if len(finished) < len(jobs):
                time.sleep(1.0)
    except KeyboardInterrupt:
        if options.cluster == "slurm":
            raise TrainingInterrupted(f"stopped waiting; the array keeps running on the cluster (jobs.json in "
                                      f"{out / '.slurm'}); run the same command when it is done") from None
        raise

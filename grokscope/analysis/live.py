"""Analysis beside training: probes on each new checkpoint of a run that is still training.

A `Watch` measures a growing run into the normal analysis directory and cache (`engine`), so a
later `grokscope analyze` with the same probes computes nothing new. Each `poll` measures a few
checkpoints not measured yet, the newest first and then spread over the older ones (so the live
figures cover the whole run early and fill in), rewrites the tables, `live.json` (what the
progress line and the report show) and, at a bounded rate, a live `report.html`. `finish`
measures what is left, at the run's final selection, and writes the report `analyze` would write.

The watcher runs in its own process (`python -m grokscope.analysis.live`, started by `Watcher`
for `grokscope train --analyze`, or in the foreground by `grokscope watch`), at idle scheduling
priority and one thread while training runs, so it only takes CPU time the trainer leaves idle:
a watcher that is slow, killed or crashes never slows or stops the training, and a new one
picks up from the cache. Checkpoints are written atomically (a temporary name, then a rename),
so a watcher never sees one half-written. It reads the run directory and never writes to it.

While the run trains, the probes whose results depend on the run's final checkpoint (`fourier`
and `progress` read its key frequencies) measure against the newest checkpoint's; a result so
measured is kept for the live view, and `finish` recomputes exactly those whose key changed
(`Probe.run_inputs`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.analysis.engine import Analysis, analyze, cached_steps, default_out
from grokscope.analysis.selection import parse_probe_list, select_steps
from grokscope.errors import GrokscopeError, UsageError
from grokscope.files import atomic_write_json, durable_writes, read_json
from grokscope.store import Run, load_run, run_status
from grokscope.tables import read_manifest

LIVE = "live.json"        # in the analysis directory: the watcher's state, for the progress line
LOG = "watch.log"         # in the analysis directory: the watcher's own output
TERMINAL = ("complete", "diverged", "interrupted")   # run statuses after which no checkpoint comes


def live_steps(available: list[int], every: int | None) -> list[int]:
    """The checkpoints a live analysis measures: those the final selection will hold. (The final
    selection also keeps the run's last checkpoint, which is known only when the run ends.)"""
    return [s for s in available if not every or s % every == 0]


def next_batch(todo: list[int], size: int) -> list[int]:
    """Which of the unmeasured steps (ascending) to measure now: the newest, then `size - 1`
    spread evenly over the rest, so that each poll refines the whole curve."""
    if len(todo) <= size:
        return list(todo)
    rest = todo[:-1]
    picks = np.unique(np.linspace(0, len(rest) - 1, size - 1).round().astype(int))
    return sorted({todo[-1], *(rest[i] for i in picks)})


class Watch:
    """Measure a run's checkpoints as they appear (see the module docstring)."""

    def __init__(self, run: str | os.PathLike, probes=None, *, out: str | os.PathLike | None = None,
                 every: int | None = None, params: dict[str, dict[str, Any]] | None = None,
                 device: str = "cpu", batch: int = 8, report_seconds: float = 15.0, log: str = "none"):
        from grokscope.tracking import check_logger

        self.run_path = Path(run)
        self.probes = parse_probe_list(probes) if probes is None or isinstance(probes, str) else list(probes)
        self.out = Path(out) if out is not None else None
        self.every, self.params, self.device = every, params or {}, device
        self.batch, self.report_seconds = batch, report_seconds
        self.log = check_logger(log)
        self.failed: set[int] = set()       # steps where a probe failed: retried only by `finish`
        self.measured = 0
        self.last_report = -float("inf")
        self.tracker = None
        self.sent: dict[str, set[int]] = {}  # steps of each probe's table sent to the dashboard
        self.columns = headline_columns(self.probes, self.params)

    def directory(self, run: Run) -> Path:
        if self.out is None:
            self.out = default_out(run)
        return self.out

    def poll(self) -> int:
        """Measure up to `batch` new checkpoints; returns how many are still unmeasured."""
        if run_status(self.run_path) is None:
            return 0   # not started yet (no run.json)
        run = load_run(self.run_path)
        out = self.directory(run)
        steps = live_steps(run.steps, self.every)
        if not steps:
            return 0
        done = cached_steps(run, self.probes, steps, out, self.params, self.device, provisional=True)
        done |= self.failed & set(steps)
        todo = [s for s in steps if s not in done]
        batch = next_batch(todo, self.batch)
        tables = analyze(run, self.probes, out=out, steps=sorted(done | set(batch)), params=self.params,
                         device=self.device, progress=False, report=False, provisional=True)
        self.measured += len(batch)
        self.failed |= failed_steps(out)
        left = len(todo) - len(batch)
        self._dashboard(run, tables)
        self._write_live(run, tables, pending=left)
        if time.monotonic() - self.last_report >= self.report_seconds:
            from grokscope.report.document import build_report

            build_report(out, run, live=self._live_banner(run, tables, left))
            self.last_report = time.monotonic()
        return left

    def finish(self, progress: bool = False) -> Analysis:
        """The final analysis (the run's full selection, every result keyed to its final checkpoint)
        and the report `grokscope analyze` would write; the figures go to the dashboard."""
        from grokscope.report.document import build_report

        run = load_run(self.run_path)
        out = self.directory(run)
        result = analyze(run, self.probes, out=out, every=self.every, params=self.params, device=self.device,
                         progress=progress, report=False)
        self._dashboard(run, result)
        build_report(out, run)
        atomic_write_json(out / LIVE, {**self._state(run, result, pending=0), "state": "finished"})
        if self.tracker is not None:
            self.tracker.log_images(sorted((out / "figures").glob("*.png")))
            self.tracker.finish()
            self.tracker = None
        return result

    # ------------------------------------------------------------ what the watcher shows

    def _state(self, run: Run, tables: dict, pending: int) -> dict[str, Any]:
        analyzed = sorted({int(s) for t in tables.values() for s in t["step"]})
        return {"pid": os.getpid(), "state": "watching", "run_step": run.steps[-1] if run.steps else None,
                "steps": run.config.train.steps if run.config is not None else None,
                "analyzed": len(analyzed), "newest": analyzed[-1] if analyzed else None, "pending": pending,
                "headlines": headlines(tables, self.columns),
                "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}

    def _write_live(self, run: Run, tables: dict, pending: int) -> None:
        atomic_write_json(self.out / LIVE, self._state(run, tables, pending))

    def _live_banner(self, run: Run, tables: dict, pending: int) -> dict[str, Any]:
        state = self._state(run, tables, pending)
        return {k: state[k] for k in ("run_step", "steps", "analyzed", "newest", "pending", "written")}

    def _dashboard(self, run: Run, tables: dict) -> None:
        """Each probe's rows not sent yet, on the training step axis (`--log`)."""
        if self.log == "none":
            return
        if self.tracker is None:
            from grokscope.tracking import tracker

            self.tracker = tracker(self.log, self.out, "analyze", run.info.get("config", {}),
                                   name=f"{run.name} (analysis)", any_order=True)
        new = {}
        for name, table in tables.items():
            sent = self.sent.setdefault(name, set())
            keep = np.array([int(s) not in sent for s in table["step"]], dtype=bool)
            if keep.any():
                new[name] = {k: np.asarray(v)[keep] for k, v in table.items()}
                sent.update(int(s) for s in np.asarray(table["step"])[keep])
        if new:
            self.tracker.log_tables(new)


def failed_steps(out: Path) -> set[int]:
    try:
        probes = read_manifest(out).get("probes", {})
    except GrokscopeError:
        return set()
    return {int(f["step"]) for e in probes.values() for f in e.get("failures", [])}


def headline_columns(probes, params: dict) -> dict[str, str]:
    """{probe: the column the progress line shows}: the first column its report states in words
    (`Probe.headlines`), where it has one."""
    from grokscope.analysis.selection import make_probes

    out = {}
    for sel in make_probes(probes, params):
        try:
            heads = [h.column for h in sel.probe.headlines() if h.kind == "change"]
        except Exception:   # a user's headlines() must not stop the watcher
            heads = []
        if heads:
            out[sel.probe.name] = heads[0]
    return out


def headlines(tables: dict, columns: dict[str, str] | None = None) -> dict[str, str]:
    """{probe: the newest value of its headline column (`headline_columns`), else of its first
    numeric column}, for the progress line. The training metrics' own probes are left out: the
    line shows those already."""
    out = {}
    for name, table in tables.items():
        if name in ("metrics", "weights", "phases") or not len(table["step"]):
            continue
        order = [c for c in [(columns or {}).get(name)] if c in table] + [c for c in table if c != "step"]
        for column in order:
            values = np.asarray(table[column])
            if values.dtype.kind == "f" and np.isfinite(values[-1]):
                out[name] = f"{column} {values[-1]:.3g}"
                break
    return out


def progress_suffix(state: dict[str, Any] | None) -> str:
    """What the trainer's progress line adds: the newest analyzed step and each probe's headline."""
    if not state or state.get("newest") is None:
        return ""
    heads = "; ".join(f"{p} {text}" for p, text in state.get("headlines", {}).items())
    pending = f", {state['pending']:,} queued" if state.get("pending") else ""
    return (f"| {state.get('analyzed', 0):,} analyzed to step {state['newest']:,}{pending}"
            + (f": {heads}" if heads else ""))


# ---------------------------------------------------------------- the watcher process

def watch(run: str | os.PathLike, probes=None, *, out=None, every=None, params=None, device: str = "cpu",
          log: str = "none", poll_seconds: float = 2.0, parent: int | None = None, idle: bool = True,
          progress: bool = True, report_seconds: float = 15.0, batch: int = 8) -> Analysis | None:
    """Watch `run` until its training ends (its status is complete, diverged or interrupted), then
    write the final analysis and report; returns it (None when `parent`, the training process,
    died first: its run has no end to analyze yet; `grokscope watch` continues it). `idle`: at
    idle priority and one thread while the run trains (all threads for the final analysis)."""
    import torch

    threads = torch.get_num_threads()
    if idle:
        lower_priority()
        torch.set_num_threads(1)
    w = Watch(run, probes, out=out, every=every, params=params, device=device, log=log,
              report_seconds=report_seconds, batch=batch)
    with durable_writes(not idle):
        ended = _watch_until_the_run_ends(w, poll_seconds, parent, progress)
    if not ended:
        return None
    torch.set_num_threads(threads)
    return w.finish(progress=progress)


def _watch_until_the_run_ends(w: Watch, poll_seconds: float, parent: int | None, progress: bool) -> bool:
    """Poll until the run's status says it ended (True), or until the training process `parent` is
    gone (False)."""
    say = print if progress else (lambda *a, **k: None)
    last_said = None
    while True:
        status = run_status(w.run_path)
        if status in TERMINAL:               # every checkpoint is on disk: `finish` measures the rest in one go
            return True
        try:
            left = w.poll()
        except (GrokscopeError, OSError) as e:   # a full disk, a damaged file: said, then tried again
            say(f"watch: {e}", file=sys.stderr)
            left = 0
            time.sleep(poll_seconds)
        if w.out is not None and (w.measured, left) != last_said and progress:
            state = read_live(w.out)
            say(f"watch: step {state.get('run_step') or 0:,} {progress_suffix(state)}", file=sys.stderr)
            last_said = (w.measured, left)
        if parent is not None and not alive(parent):
            return False
        if left == 0:
            time.sleep(poll_seconds)


def lower_priority() -> None:
    """Idle scheduling (the kernel runs us only on a core nothing else wants), else nice 19.

    Linux schedules each session as a group first (autogroup) and a policy counts only within
    its group, so a watcher in a session of its own (`Watcher` starts it so, that Ctrl-C reaches
    the trainer only) also lowers its group's weight: without that, SCHED_IDLE alone left it half
    the CPU and tripled a nanda step (docs/benchmarks.md, "Analysis beside training")."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
    if os.getsid(0) == os.getpid():   # our own session: the group is ours alone
        try:
            Path("/proc/self/autogroup").write_text("19")
        except OSError:
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_live(out: str | os.PathLike) -> dict[str, Any]:
    try:
        return read_json(Path(out) / LIVE)
    except (GrokscopeError, OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    """`python -m grokscope.analysis.live RUN ...`: the watcher process `Watcher` starts."""
    p = argparse.ArgumentParser(prog="grokscope-watcher")
    p.add_argument("run")
    p.add_argument("--probe")
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=int)
    p.add_argument("--params", default="{}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--log", default="none")
    p.add_argument("--parent", type=int)
    p.add_argument("--poll", type=float, default=2.0)
    p.add_argument("--report-seconds", type=float, default=15.0)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        watch(args.run, args.probe, out=args.out, every=args.every, params=json.loads(args.params),
              device=args.device, log=args.log, parent=args.parent, poll_seconds=args.poll,
              report_seconds=args.report_seconds)
    except GrokscopeError as e:
        print(f"watch: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


class Watcher:
    """The watcher process for a run this process trains (`grokscope train --analyze`,
    `Recorder(analyze=...)`): started before training, left alone while it trains, waited for
    after (`finish`), and replaced by an analysis in this process if it died on the way."""

    def __init__(self, run: str | os.PathLike, probes, *, out: str | os.PathLike, every: int | None = None,
                 params: dict | None = None, device: str = "cpu", log: str = "none", poll_seconds: float = 2.0):
        self.run, self.out = Path(run), Path(out)
        self.probes = ",".join(parse_probe_list(probes))
        self.every, self.params, self.device, self.log = every, params or {}, device, log
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / LIVE).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "grokscope.analysis.live", str(self.run), "--probe", self.probes,
               "--out", str(self.out), "--params", json.dumps(self.params), "--device", device,
               "--log", log, "--parent", str(os.getpid()), "--poll", str(poll_seconds)]
        if every:
            cmd += ["--every", str(every)]
        self.log_file = open(self.out / LOG, "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._last_read, self._suffix = 0.0, ""

    def suffix(self) -> str:
        """The progress line's addition, read from live.json at most every 2 s."""
        if time.monotonic() - self._last_read > 2.0:
            self._last_read = time.monotonic()
            self._suffix = progress_suffix(read_live(self.out))
        return self._suffix

    def stop(self) -> None:
        """Training stopped early (Ctrl-C, an error): the watcher stops; what it measured is cached."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def finish(self, progress: bool = True) -> Path:
        """Wait for the watcher's final analysis; if the watcher is gone or failed, analyze here.
        Returns report.html."""
        if progress and self.proc.poll() is None:
            state = read_live(self.out)
            queued = f" ({state['pending']:,} checkpoints queued)" if state.get("pending") else ""
            print(f"{self.out}: the watcher's final analysis{queued}; its progress: {self.out / LOG}",
                  file=sys.stderr)
        self.proc.wait()
        self.log_file.close()
        if self.proc.returncode != 0 or read_live(self.out).get("state") != "finished":
            if progress:
                print(f"{self.out}: the watcher exited with {self.proc.returncode} (see {self.out / LOG}); "
                      "analyzing here", file=sys.stderr)
            from grokscope.report.document import build_report

            run = load_run(self.run)
            analyze(run, self.probes, out=self.out, every=self.every, params=self.params, device=self.device,
                    progress=progress, report=False)
            build_report(self.out, run)
            if self.log != "none":
                from grokscope.tracking import log_analysis

                log_analysis(self.log, self.out, run)
        return self.out / "report.html"


@contextmanager
def live_analysis(run: str | os.PathLike, probes, *, out: str | os.PathLike, **kw) -> Iterator[Watcher]:
    """A `Watcher` for the block that trains `run`: finished (waited for) when the block ends
    normally, stopped when it raises."""
    watcher = Watcher(run, probes, out=out, **kw)
    try:
        yield watcher
    except BaseException:
        watcher.stop()
        raise


def check_selection(probes, every: int | None, params: dict | None = None) -> None:
    """Usage errors before any training starts: unknown probes or parameters, a bad --every."""
    from grokscope.analysis.selection import make_probes

    make_probes(parse_probe_list(probes), params)
    if every is not None and every < 1:
        raise UsageError(f"--every must be a positive number of steps, got {every}")
    select_steps([0], every)


if __name__ == "__main__":
    sys.exit(main())

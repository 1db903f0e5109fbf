"""A progress line with steps/s and ETA, on stderr. Redrawn in place on a terminal; on a pipe or
in CI, one line every `interval` seconds."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_step(step: Any) -> str:
    """A step as every page and line writes it: 12,345, or "never" for None."""
    return "never" if step is None else f"{int(step):,}"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLine:
    def __init__(self, total: int, start: int = 0, label: str = "step", enabled: bool = True,
                 stream: TextIO | None = None, interval: float | None = None):
        self.total, self.start, self.label = total, start, label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = enabled
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.t0 = time.perf_counter()
        self.last_draw = -float("inf")
        self.width = 0

    def rate(self, done: int) -> float:
        elapsed = time.perf_counter() - self.t0
        return (done - self.start) / elapsed if elapsed > 0 else 0.0

    def due(self) -> bool:
        """Whether the next `update` draws (so a caller builds costly extra text only then)."""
        return self.enabled and time.perf_counter() - self.last_draw >= self.interval

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        rate = self.rate(done)
        eta = format_duration((self.total - done) / rate) if rate > 0 else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        line = f"{self.label} {int(done):,}/{self.total:,} ({pct:4.1f}%)  {rate:,.1f} {self.label}s/s  ETA {eta}"
        if extra:
            line += "  " + extra
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()

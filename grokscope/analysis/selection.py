"""Choosing what an analysis runs: the probes (names, specs, classes or instances, with their
parameters) and the checkpoints (all, every N steps, a step range, or N spread log-linearly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from grokscope.errors import UsageError
from grokscope.probes.base import Probe, canonical_name, resolve_probe

DEFAULT_PROBES = ("metrics", "weights", "fourier", "progress", "phases")


@dataclass
class Selected:
    probe: Probe
    origin: str
    spec: str | None        # how a worker process finds the class again; None: in-process only


def parse_probe_list(items: list[str] | str | None) -> list[str]:
    if items is None:
        return list(DEFAULT_PROBES)
    if isinstance(items, str):
        items = [items]
    out = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            # "path/to/file.py:Class" may contain commas only in exotic paths; split on commas
            if part and part not in out:
                out.append(part)
    return out


def make_probes(probes, params: dict[str, dict[str, Any]] | None = None) -> list[Selected]:
    params = canonical_params(params or {})
    selected = []
    for item in (probes if isinstance(probes, (list, tuple)) else [probes]):
        if isinstance(item, Probe):
            selected.append(Selected(item, f"python {type(item).__module__}.{type(item).__qualname__}", None))
            continue
        if isinstance(item, type) and issubclass(item, Probe):
            selected.append(Selected(item(**params.get(item.name, {})),
                                     f"python {item.__module__}.{item.__qualname__}", None))
            continue
        cls, origin = resolve_probe(item)
        selected.append(Selected(cls(**params.get(cls.name, {})), origin, item))
    names = [s.probe.name for s in selected]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        n = sorted(dupes)[0]
        where = [s.origin for s in selected if s.probe.name == n]
        raise UsageError(f"probe name {n!r} is defined twice: {where[0]} and {where[1]}")
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise UsageError(f"--param names probe {unknown[0]!r}, which is not among the probes run ({', '.join(names)})")
    return selected


def canonical_params(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`params` keyed by each probe's own name (`--param lu.x=...` is `landscape`'s)."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in params.items():
        out.setdefault(canonical_name(name), {}).update(values)
    return out


def select_steps(available: list[int], every: int | None = None, steps: str | list[int] | None = None,
                 count: int | None = None) -> list[int]:
    """All checkpoints, or those at multiples of `every`, or within `steps` "A:B" (or the listed
    steps), or `count` spread log-linearly (plus the first and last)."""
    chosen = list(available)
    if isinstance(steps, (list, tuple, set)):
        missing = sorted(set(steps) - set(available))
        if missing:
            raise UsageError(f"no checkpoint at step {missing[0]:,} (see `grokscope info RUN` for the steps)")
        chosen = sorted(set(steps))
    elif steps:
        lo, sep, hi = steps.partition(":")
        try:
            lo_v = int(float(lo)) if lo.strip() else None
            hi_v = int(float(hi)) if sep and hi.strip() else (lo_v if not sep else None)
        except (ValueError, OverflowError):
            raise UsageError(f"--steps expects A:B (either may be empty), got {steps!r}") from None
        chosen = [s for s in chosen if (lo_v is None or s >= lo_v) and (hi_v is None or s <= hi_v)]
    if every:
        if every < 1:
            raise UsageError(f"--every must be a positive number of steps, got {every}")
        last = chosen[-1] if chosen else None
        chosen = [s for s in chosen if s % every == 0 or s == last]
    if count:
        if count < 2:
            raise UsageError(f"--count must be at least 2, got {count}")
        if len(chosen) > count:
            # evenly spaced in log(1 + step), snapped to the nearest checkpoint
            arr = np.log1p(np.array(chosen, dtype=np.float64))
            targets = np.linspace(arr[0], arr[-1], count)
            chosen = sorted({chosen[int(np.abs(arr - t).argmin())] for t in targets})
    if not chosen:
        raise UsageError("no checkpoint matches the selection (see `grokscope info RUN` for the steps)")
    return chosen

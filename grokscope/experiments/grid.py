"""A sweep's grid: `--grid KEY=LO:HI:N[:log|lin]` or `KEY=V1,V2` axes and `--seeds` parsed into
values, and the points they span (a config and a deterministic run name per point)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from grokscope.config import RunConfig, load_preset, valid_keys, with_overrides
from grokscope.errors import UsageError


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple
    scale: str  # "log", "lin" or "list"

    @property
    def label(self) -> str:
        return self.key.split(".")[-1]


MAX_VALUES = 10_000   # an axis or a seed count past this is a typo, not a sweep (and would fill memory)


def parse_grid(text: str) -> Axis:
    """"optim.lr=1e-5:1e-2:16:log", "optim.weight_decay=0:10:11" (linear unless :log) or
    "task.frac_train=0.3,0.4,0.5" / "optim.name=adamw,adam"."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not spec:
        raise UsageError(f"--grid expects KEY=LO:HI:N[:log|lin] or KEY=V1,V2,..., got {text!r}")
    if key not in valid_keys():
        raise UsageError(f"--grid: unknown config key {key!r}; `grokscope presets` lists presets, "
                         "docs/configuration.md the keys")
    if ":" in spec:
        parts = spec.split(":")
        try:
            lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
            kind = parts[3] if len(parts) > 3 else "lin"
            if (kind not in ("log", "lin") or not 1 <= n <= MAX_VALUES or len(parts) > 4 or not np.isfinite([lo, hi]).all()
                    or (kind == "log" and min(lo, hi) <= 0)):
                raise ValueError
        except (ValueError, IndexError):
            raise UsageError(f"--grid {key}: expected LO:HI:N[:log|lin] with finite LO, HI, 1 <= N <= "
                             f"{MAX_VALUES:,} (and "
                             f"LO, HI > 0 for log), got {spec!r}") from None
        values = np.geomspace(lo, hi, n) if kind == "log" else np.linspace(lo, hi, n)
        return Axis(key, tuple(float(f"{v:.6g}") for v in values), kind)
    values = tuple(dict.fromkeys(_number(v.strip()) for v in spec.split(",") if v.strip()))
    if not values:
        raise UsageError(f"--grid {key}: no values in {spec!r}")
    return Axis(key, values, "list")


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_seeds(text: str | None, base: int) -> list[int]:
    """"3" -> base, base+1, base+2 (base: the preset's train.seed); "0,1,5" -> those seeds."""
    if text is None:
        return [base]
    try:
        if "," in text:
            return list(dict.fromkeys(int(s) for s in text.split(",") if s.strip()))
        n = int(text)
        if not 1 <= n <= MAX_VALUES:
            raise ValueError
        return list(range(base, base + n))
    except ValueError:
        raise UsageError(f"--seeds expects a count from 1 to {MAX_VALUES:,} (3) or a list (0,1,2), got {text!r}") from None


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)  # grid values are rounded to 6 digits


@dataclass(frozen=True)
class Point:
    name: str
    preset: str
    coords: dict
    seed: int
    config: RunConfig


def expand(presets: list[str], axes: list[Axis], seeds: str | None = None,
           overrides: list[str] = (), sparse_checkpoints: int = 10) -> list[Point]:
    """Every (preset, grid value combination, seed) as a Point with a deterministic name.
    `sparse_checkpoints` > 0 keeps only that many log-spaced checkpoints (plus the first and last)
    per run instead of the preset's dense schedule: a 176-run sweep would otherwise write GBs."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise UsageError("--grid names the same key twice; give each key one --grid")
    labels = [a.label if [b.label for b in axes].count(a.label) == 1 else a.key for a in axes]
    points = []
    for preset in presets:
        base = with_overrides(load_preset(preset), list(overrides))
        for values in itertools.product(*(a.values for a in axes)):
            for seed in parse_seeds(seeds, base.train.seed):
                sets = [f"{k}={v}" for k, v in zip(keys, values)] + [f"train.seed={seed}"]
                name = "_".join([preset, *(f"{lab}{_fmt(v)}" for lab, v in zip(labels, values)),
                                 f"s{seed}"])
                config = with_overrides(base, sets)
                if sparse_checkpoints > 0:
                    config = dataclasses.replace(config, checkpoint=dataclasses.replace(
                        config.checkpoint, every=config.train.steps, dense_until=0,
                        log_points=sparse_checkpoints))
                config = dataclasses.replace(config, name=name)
                points.append(Point(name, preset, dict(zip(keys, values)), seed, config))
    return points

"""The dense checkpoint schedule: every step early, log-spaced steps, every `every` steps, the end."""

from __future__ import annotations

import numpy as np

from grokscope.config import CheckpointConfig


def resolved_every(steps: int, cfg: CheckpointConfig) -> int:
    return cfg.every if cfg.every > 0 else max(1, steps // 200)


def checkpoint_schedule(steps: int, cfg: CheckpointConfig) -> list[int]:
    """Sorted checkpoint steps in [0, steps].

    Memorization happens in the first few hundred steps (every step up to `dense_until`, then
    log-spaced points); the generalization cliff can come anywhere, so `every` is steps // 200 by
    default: the cliff is dated to within 0.5% of the run length.
    """
    dense = set(range(0, min(cfg.dense_until, steps) + 1))
    regular = set(range(0, steps + 1, resolved_every(steps, cfg)))
    start = max(cfg.dense_until, 1)
    log = set()
    if cfg.log_points > 0 and steps > start:
        log = set(np.unique(np.round(np.geomspace(start, steps, cfg.log_points))).astype(int).tolist())
    return sorted(dense | regular | log | {steps})

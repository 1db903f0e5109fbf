"""Omnigrok's loss-versus-weight-norm landscape (Liu, Michaud & Tegmark 2023), as pure functions
over its table (columns scale, norm, best_train_loss, best_test_loss, ...)."""

from __future__ import annotations

import numpy as np

TRAIN_FIT = 0.01  # the "L": best train loss below this fraction of the largest best train loss


def landscape_summary(table: dict[str, np.ndarray]) -> dict:
    train = table["best_train_loss"]
    fit = np.nonzero(train <= TRAIN_FIT * np.nanmax(train))[0]
    best = int(np.nanargmin(table["best_test_loss"]))
    return {
        "train_fit_rule": f"best train loss <= {TRAIN_FIT:g} x the largest best train loss",
        "threshold_scale": float(table["scale"][fit[0]]) if fit.size else None,
        "threshold_norm": float(table["norm"][fit[0]]) if fit.size else None,
        "test_min_scale": float(table["scale"][best]),
        "test_min_norm": float(table["norm"][best]),
        "test_min_loss": float(table["best_test_loss"][best]),
    }


def interpolate_loglog(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """ys at x, interpolated linearly in log(x)-log(y) over the finite, positive points."""
    ys = np.asarray(ys, dtype=np.float64)
    ok = np.isfinite(ys) & (ys > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.exp(np.interp(np.log(x), np.log(np.asarray(xs)[ok]), np.log(ys[ok]))))

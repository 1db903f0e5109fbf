"""Omnigrok's loss landscape over the weight norm (Liu, Michaud & Tegmark 2023): for each scale
alpha, initialize at alpha times the default init, train with the global parameter norm held at
alpha * w0 (w0: the norm at default init; weight decay off) and record the best train and test
loss and accuracy. Train loss is low for every norm above a threshold (the "L"); test loss only in
a band (the "U").

    <out>/scale_<alpha>/     a normal run directory per norm (resumable; complete ones are skipped)
    <out>/landscape.csv      scale, norm, best and final losses and accuracies
    <out>/landscape.png/pdf/svg, landscape.json (threshold norm, test-loss minimum)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from grokscope.config import RunConfig
from grokscope.console import ProgressLine
from grokscope.errors import UsageError
from grokscope.files import atomic_write_json
from grokscope.measures.landscape import landscape_summary
from grokscope.specs import FigureSpec, Panel
from grokscope.store import load_run
from grokscope.tables import Table, landscape_table_path, write_table


def parse_scales(text: str) -> list[float]:
    """"0.1:10:11:log", "0.5:2:4:lin" or "0.5,1,2"."""
    try:
        if ":" in text:
            parts = text.split(":")
            lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
            kind = parts[3] if len(parts) > 3 else "log"
            if kind not in ("log", "lin") or n < 1 or lo <= 0 or hi < lo:
                raise ValueError
            values = np.geomspace(lo, hi, n) if kind == "log" else np.linspace(lo, hi, n)
            return [float(f"{v:.6g}") for v in values]
        values = [float(v) for v in text.split(",") if v.strip()]
        if not values or min(values) <= 0:
            raise ValueError
        return values
    except (ValueError, IndexError):
        raise UsageError(f"--scales expects LO:HI:N[:log|lin] or a comma list of positive numbers, got {text!r}") from None


def scale_config(config: RunConfig, scale: float) -> RunConfig:
    return dataclasses.replace(
        config, name=f"{config.name}-scale{scale:g}",
        model=dataclasses.replace(config.model, init_scale=scale),
        optim=dataclasses.replace(config.optim, weight_decay=0.0),
        train=dataclasses.replace(config.train, fixed_norm=scale, fixed_norm_absolute=False, threads=1))


def _train_point(args: tuple[dict, str, str]) -> str:
    from grokscope.training import ensure_trained

    config_dict, path, device = args
    return str(ensure_trained(RunConfig.from_dict(config_dict), path, device=device).path)


def landscape(config: RunConfig, scales: list[float], out: str | os.PathLike, *, jobs: int = 2,
              progress: bool = True, device: str = "cpu") -> Table:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(scale_config(config, s).to_dict(), str(out / f"scale_{s:g}"), device) for s in scales]
    bar = ProgressLine(len(tasks), label="norm", enabled=progress)
    bar.update(0, force=True)
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for i, _ in enumerate(pool.map(_train_point, tasks), 1):
                bar.update(i, force=True)
    else:
        for i, task in enumerate(tasks, 1):
            _train_point(task)
            bar.update(i, force=True)
    bar.close()
    table = collect(out, scales)
    write_table(landscape_table_path(out), table)
    summary = landscape_summary(table)
    atomic_write_json(out / "landscape.json", {**summary, "preset": config.name, "scales": scales})
    from grokscope.report.figures import draw_figure, save_figure

    save_figure(draw_figure(landscape_figure(summary), table), out / "landscape")
    return table


def collect(out: Path, scales: list[float]) -> Table:
    rows = {k: [] for k in ("scale", "norm", "best_train_loss", "best_test_loss", "best_train_acc",
                            "best_test_acc", "final_train_loss", "final_test_loss")}
    for s in scales:
        run = load_run(out / f"scale_{s:g}")
        m = run.metrics
        rows["scale"].append(s)
        rows["norm"].append(float(run.info.get("fixed_norm") or np.nan))
        for split in ("train", "test"):
            loss = m[f"{split}_loss"]
            acc = m[f"{split}_acc"]
            rows[f"best_{split}_loss"].append(float(np.nanmin(loss)))
            rows[f"best_{split}_acc"].append(float(np.nanmax(acc)) if np.isfinite(acc).any() else np.nan)
            rows[f"final_{split}_loss"].append(float(loss[-1]))
    return {k: np.array(v, dtype=np.float64) for k, v in rows.items()}


def landscape_figure(summary: dict) -> FigureSpec:
    """Best train and test loss against the norm, the L's threshold and the U's minimum marked."""
    from grokscope.probes.landscape import landscape_marks

    return FigureSpec("landscape", panels=(Panel(
        x="norm", columns=("best_train_loss", "best_test_loss"), xlabel="weight norm", ylabel="loss",
        logx=True, logy=True, marks=landscape_marks(summary),
        title="loss against weight norm (Omnigrok's L and U)"),))

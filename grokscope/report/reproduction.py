"""A reproduction's page from its files: the figure from `figure.json` (its layout and series, as
data), the table from the checks. Owns figure.json, results.csv/json and report.md/html in a
reproduction directory; never imports the reproductions themselves (`grokscope.reproduce`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from grokscope.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from grokscope.report.figures import figure_legend, save_figure
from grokscope.report.html import from_markdown
from grokscope.report.style import ONE_COLUMN, OTHER_COLOURS, RC, SPLIT_COLOURS, TWO_COLUMN, new_figure
from grokscope.report.sweep import COLORS as PHASE_CELL_COLOURS
from grokscope.tables import write_table

RESULT_COLUMNS = ("quantity", "paper", "ours", "within", "tolerance", "source", "note")


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def write_reproduction(out: Path, meta: dict[str, Any], checks: list[dict[str, Any]], figure: dict[str, Any],
                       tables: dict[str, dict[str, list]] | None = None) -> Path:
    """figure.{png,pdf,svg,csv,json}, results.{csv,json}, report.{md,html} and each of `tables` as
    <name>.csv in `out`; returns report.md."""
    out.mkdir(parents=True, exist_ok=True)
    for name, columns in (tables or {}).items():
        write_table(out / f"{name}.csv", {k: np.array(v, dtype=object) for k, v in columns.items()})
    atomic_write_json(out / "figure.json", figure)
    draw_reproduction(out)
    write_table(out / "results.csv", {c: np.array([verdict(ch["ok"]) if c == "within" else str(ch.get(c, ""))
                                                   for ch in checks], dtype=object) for c in RESULT_COLUMNS})
    atomic_write_json(out / "results.json", {"meta": meta, "checks": checks})
    md = render(meta, checks, figure)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", from_markdown(md, meta["title"]))
    return out / "report.md"


GALLERY_FILES = ("figure.png", "figure.svg", "figure.csv", "results.csv", "report.md")


def copy_to_gallery(out: Path, dest: Path, extra: list[str] = ()) -> None:
    """The files a docs gallery shows, from a reproduction directory (the figure and the table),
    and `extra` files beside them (a phase diagram's cells)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*GALLERY_FILES, *extra):
        atomic_write_bytes(dest / name, (out / name).read_bytes())


def draw_reproduction(out: Path) -> list[str]:
    """figure.{png,pdf,svg} and figure.csv (panel, series, x, y) from figure.json."""
    figure = read_json(out / "figure.json")
    fig, table = draw_figure_json(figure)
    return save_figure(fig, out / "figure", table)


def draw_figure_json(figure: dict[str, Any]):
    """(matplotlib Figure, its data as a table) of a reproduction's figure.json: panels in rows of
    `columns`, train and test in their fixed colours, one colour per setting across panels, one
    legend below."""
    panels = figure["panels"]
    per_row = figure.get("columns") or len(panels)
    rows = math.ceil(len(panels) / per_row)
    fig = new_figure(TWO_COLUMN if per_row > 1 else ONE_COLUMN, 1.9 * rows + 0.5)
    data: dict[str, list] = {"panel": [], "series": [], "x": [], "y": []}
    with matplotlib.rc_context(RC):
        axes = fig.subplots(rows, per_row, squeeze=False).flatten()
        for ax, panel in zip(axes, panels):
            others = 0
            for s in panel["series"]:
                if s["split"] in SPLIT_COLOURS:
                    colour = SPLIT_COLOURS[s["split"]]
                elif s["split"] and s["split"] in PHASE_CELL_COLOURS:   # a phase diagram's cells: the sweep report's colours
                    colour = PHASE_CELL_COLOURS[s["split"]]
                else:
                    colour = OTHER_COLOURS[(s["colour"] if s["colour"] >= 0 else others) % len(OTHER_COLOURS)]
                    others += 1
                x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
                marker = s["style"][0] if s["style"][:1] in ("o", "s", "x") else None
                line = (s["style"][1:] if marker else s["style"]) or "none"
                ax.plot(x, y, color=colour, marker=marker, markersize=s.get("size", 3.0), linestyle=line,
                        label=s["label"])
                for xv, yv in zip(x, y):
                    data["panel"].append(panel["title"]), data["series"].append(s["label"])
                    data["x"].append(float(xv)), data["y"].append(float(yv))
            for i, (label, xv) in enumerate(panel.get("vlines", ())):   # one line style each: the legend tells them apart
                ax.axvline(xv, color="#555555", linestyle=(":", "--", "-.")[i % 3], linewidth=0.8, label=label)
            ax.set_title(panel["title"], loc="left")
            ax.set_xlabel(panel["xlabel"])
            ax.set_ylabel(panel["ylabel"])
            if panel["logx"]:
                ax.set_xscale("log")
            if panel["logy"]:
                ax.set_yscale("log")
            if panel.get("yticks"):
                ax.set_yticks([y for y, _ in panel["yticks"]], [label for _, label in panel["yticks"]])
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        figure_legend(fig, axes[:len(panels)])
    table = {"panel": np.array(data["panel"], dtype=object), "series": np.array(data["series"], dtype=object),
             "x": np.array(data["x"]), "y": np.array(data["y"])}
    return fig, table


def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def render(meta: dict[str, Any], checks: list[dict[str, Any]], figure: dict[str, Any]) -> str:
    judged = [c for c in checks if c["ok"] is not None]
    runs, reused = meta.get("runs", 0), meta.get("runs_reused", 0)
    trained = ("training every run" if not reused else f"all {runs} runs reused from an earlier call"
               if reused == runs else f"training {runs - reused} of its {runs} runs, the others reused")
    if reused and meta.get("reused_from"):
        trained += f"; the reused runs were trained by {' and '.join(meta['reused_from'])}"
    lines = [f"# {meta['title']}", "",
             f"Reproduction `{meta['name']}` at scale `{meta['scale']}` of {meta['paper']}. "
             f"{sum(c['ok'] for c in judged)} of {len(judged)} headline checks within tolerance.", "",
             meta["summary"], "", f"Command: `{meta['command']}` (took {meta['seconds']:.0f} s here, {trained}).", "",
             "![figure](figure.png)", ""]
    if figure.get("caption"):
        lines += [figure["caption"], ""]
    lines += ["## Paper against ours", "",
              "| quantity | paper | ours | within tolerance? | tolerance | source |", "|---|---|---|---|---|---|"]
    lines += [f"| {_cell(c['quantity'])} | {_cell(c['paper'])} | {_cell(c['ours'])} | {verdict(c['ok'])} | "
              f"{_cell(c['tolerance'])} | {_cell(c['source'])} |" for c in checks]
    notes = [f"- {c['quantity']}: {c['note']}" for c in checks if c.get("note")] + [f"- {n}" for n in meta["notes"]]
    if notes:
        lines += ["", "## Notes", ""] + notes
    if meta["settings"]:
        lines += ["", "## Settings", "", "| setting | value | paper |", "|---|---|---|"]
        lines += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} |" for a, b, c in meta["settings"]]
    lines += ["", "## Runs", ""]
    for part in meta["parts"]:
        grid = " ".join(f"--grid {g}" for g in part["grid"])
        sets = " ".join(f"--set {o}" for o in part["overrides"])
        lines.append(f"- `{part['name']}/`: `grokscope sweep --preset {part['preset']} {grid} {sets}`".rstrip()
                     + (f", probes {part['probes']} over {part['count']} checkpoints" if part["probes"] else ""))
    return "\n".join(lines) + "\n"


__all__ = ["GALLERY_FILES", "RESULT_COLUMNS", "copy_to_gallery", "draw_figure_json", "draw_reproduction", "render", "verdict", "write_reproduction"]

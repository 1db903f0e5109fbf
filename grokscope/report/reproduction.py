"""A reproduction's page from its files: the figure from `figure.json` (its layout and series, as
data), the table from the checks. Owns figure.json, results.csv/json and report.md/html in a
reproduction directory; never imports the reproductions themselves (`grokscope.reproduce`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from grokscope.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from grokscope.report.figures import draw_figure, figure_data, save_figure
from grokscope.report.html import from_markdown
from grokscope.specs import FigureSpec
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
    """figure.{png,pdf,svg} and figure.csv (every point drawn) from figure.json (a `FigureSpec`
    whose panels hold fixed series), drawn like every other figure (`report.figures`)."""
    fig, table = draw_figure_json(read_json(out / "figure.json"))
    return save_figure(fig, out / "figure", table)


def draw_figure_json(figure: dict[str, Any]):
    """(matplotlib Figure, the table of every point it draws) of a reproduction's figure.json."""
    spec = FigureSpec.from_dict(figure)
    return draw_figure(spec, {}), figure_data(spec, {})


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

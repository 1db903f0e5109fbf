"""Small HTML summaries for notebooks (`_repr_html_`): a run, an analysis, a comparison.

Each is a table of the key facts and the key figures inline (PNG data URIs), drawn without
pyplot, so a notebook's backend and its open figures are left alone. Reads tables and files
only, like the rest of the report.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

from grokscope.console import format_step
from grokscope.tables import Table

MAX_FIGURES = 4   # an analysis shows the training curves and the first probes' figures


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" style="max-width:100%" src="data:image/png;base64,{data}"/>'


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                    f"{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def run_html(run) -> str:
    """A run: status, task, model, steps, transitions and its training curves."""
    from grokscope.report.document import TRAINING_FIGURE
    from grokscope.report.figures import draw_figure

    cfg, info = run.config, run.info
    metrics: Table = run.metrics
    task = cfg.task
    rows = [("status", run.status), ("task", info.get("task_description") or task.name),
            ("model", f"{cfg.model.name}, {info.get('n_params', '?'):,} parameters" if isinstance(info.get("n_params"), int)
             else cfg.model.name),
            ("steps logged", f"{int(metrics['step'][-1]):,} of {cfg.train.steps:,}" if len(metrics["step"]) else "none"),
            ("checkpoints", len(run.steps)),
            ("memorized", format_step(run.memorization_step)), ("generalized", format_step(run.generalization_step))]
    parts = [f"<div><b>grokscope run</b> <code>{html.escape(str(run.path))}</code>", _table(rows)]
    if len(metrics["step"]):
        parts.append(_img(_png(draw_figure(TRAINING_FIGURE, metrics)), "training curves"))
    return "".join(parts) + "</div>"


def _summary(out: Path) -> str:
    """The report's When / Why paragraphs, as plain HTML."""
    path = out / "report.md"
    if not path.exists():
        return ""
    text = path.read_text()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip().startswith(("**When.**", "**Why.**"))]
    out_html = []
    for p in paragraphs:
        p = re.sub(r"\(\[figure: [^\]]*\]\([^)]*\)(; )?", "(", p).replace("()", "")
        p = html.escape(p)
        out_html.append("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", p) + "</p>")
    return "".join(out_html)


def analysis_html(out: Path) -> str:
    """An analysis directory: the summary's When and Why, each probe's status, key figures."""
    from grokscope.tables import has_manifest, read_manifest

    out = Path(out)
    manifest = read_manifest(out) if has_manifest(out) else {}
    rows = [(name, entry.get("status", "?") + (f": {entry['reason']}" if entry.get("reason") else ""))
            for name, entry in manifest.get("probes", {}).items()]
    parts = [f"<div><b>grokscope analysis</b> <code>{html.escape(str(out))}</code>", _summary(out), _table(rows)]
    figures = out / "figures"
    names = ["training"] + [n for n, e in manifest.get("probes", {}).items() if e.get("status") == "ok"]
    shown = 0
    for name in names:
        png = figures / f"{name}.png"
        if png.exists() and shown < MAX_FIGURES:
            parts.append(_img(base64.b64encode(png.read_bytes()).decode(), name))
            shown += 1
    if (out / "report.html").exists():
        parts.append(f"<p>Full report: <code>{html.escape(str(out / 'report.html'))}</code></p>")
    return "".join(parts) + "</div>"


def comparison_html(out: Path) -> str:
    """A comparison directory: its figure and its table of phase steps."""
    out = Path(out)
    parts = [f"<div><b>grokscope comparison</b> <code>{html.escape(str(out))}</code>"]
    csv = out / "compare.csv"
    if csv.exists():
        lines = [line.split(",") for line in csv.read_text().splitlines() if line]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in lines[1:])
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    png = out / "compare.png"
    if png.exists():
        parts.append(_img(base64.b64encode(png.read_bytes()).decode(), "comparison"))
    return "".join(parts) + "</div>"


__all__ = ["analysis_html", "comparison_html", "run_html"]


def register() -> None:
    """Make `Run._repr_html_` show `run_html` (called on import: the store does not import the report)."""
    from grokscope.store import Run

    Run.html_view = staticmethod(run_html)


register()

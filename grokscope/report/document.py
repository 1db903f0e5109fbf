"""report.md and report.html from an analysis directory's tables (the report reads only tables).

The summary is written from the numbers (`report.narrative`): when the model memorized and
generalized, and why, each claim with its number, its figure and its source paper. Figures go to
`figures/` with the data they draw; report.html refers to them by relative paths (the folder
can be moved or zipped), or embeds them (`single_file`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.console import format_step
from grokscope.errors import UsageError
from grokscope.files import atomic_write_text
from grokscope.measures.transitions import change_span
from grokscope.report.figures import draw_figure, figure, figure_data, save_figure
from grokscope.report.html import TAIL
from grokscope.report.html import head as page_head
from grokscope.report.narrative import MECHANISMS, Claim, Narrative, narrative
from grokscope.specs import SPEC_SUFFIX, FigureSpec, Panel, ReportSpec, read_spec
from grokscope.store import Run
from grokscope.tables import (
    Table,
    analysis_lock,
    has_manifest,
    read_manifest,
    read_result,
    read_table,
    result_path,
    table_path,
    write_manifest,
    write_table,
)

TRAINING = "training"   # the run's metrics, copied as training.csv so the report reads tables only
PHASES = "phases"       # the `phases` probe's result: transition steps and phase intervals
FIGURES = "figures"     # the folder of figures (png, pdf, svg) and the data each draws (csv)
SPLITS = (("train_loss", "train"), ("test_loss", "test"), ("train_acc", "train"), ("test_acc", "test"))
TRAINING_FIGURE = FigureSpec(TRAINING, panels=(
    Panel(columns=("train_loss", "test_loss"), labels=SPLITS, title="loss", ylabel="loss", logy=True),
    Panel(columns=("train_acc", "test_acc"), labels=SPLITS, title="accuracy", ylabel="accuracy", logy=False)))


def headline_lines(tables: dict[str, Table], specs: dict[str, ReportSpec], generalized: bool) -> list[str]:
    """The claims each probe's spec asks the summary to state, from its table."""
    lines = []
    for probe, spec in specs.items():
        table = tables.get(probe)
        for h in spec.headlines:
            if table is None or h.column not in table or not len(table[h.column]):
                continue
            if h.only_if_generalized and not generalized:
                continue
            values = table[h.column]
            if values.dtype.kind == "f":
                values = values[np.isfinite(values)]
                if not len(values):
                    continue
            if h.kind == "last":
                words = str(values[-1]).split() if values.dtype.kind == "O" else [f"{values[-1]:g}"]
                lines.append(f"{h.label}: {', '.join(words)}.")
            elif values.dtype.kind == "f":
                lo, hi = change_span(table["step"][np.isfinite(table[h.column])], values)
                if lo is None:
                    continue
                lines.append(f"{h.label} went from {values[0]:.{h.digits}f} to {values[-1]:.{h.digits}f}, "
                             f"mostly between steps {lo:,} and {hi:,}.")
    return lines


def summary(phases: dict[str, Any], tables: dict[str, Table], specs: dict[str, ReportSpec],
            training: Table | None = None, probe_status: dict[str, Any] | None = None,
            task: str | None = None, weight_decay: float | None = None,
            explained: Table | None = None) -> tuple[Narrative, list[str]]:
    """The narrative (when and why), and the headline claims of the probes it does not cover."""
    story = narrative(tables, phases, training, probe_status, task, weight_decay)
    story.why[:0] = explain_claims(explained)
    covered = set(MECHANISMS) | {"metrics", "weights", PHASES}
    other = {k: v for k, v in specs.items() if k not in covered}
    gen = phases.get("generalization_step") if phases else None
    return story, headline_lines(tables, other, generalized=gen is not None)


EXPLAIN = Path("explain") / "mechanisms.csv"   # `grokscope explain`'s table, when it has run


def explain_claims(table: Table | None) -> list[Claim]:
    """The interventions' verdicts, which the report's "Why" leads with (experiments/explain.py)."""
    if table is None or not len(table["mechanism"]):
        return []
    verdicts = [str(v) for v in table["verdict"]]
    if all(v.startswith("nothing to explain") for v in verdicts):
        return [Claim(f"Interventions: {verdicts[0][0].lower()}{verdicts[0][1:]}.")]
    out = []
    for i, v in enumerate(verdicts):
        if v.startswith("not applicable"):
            continue
        figure = f" (figure: explain/{table['figure'][i]})" if str(table["figure"][i]) else ""
        out.append(Claim(f"Intervention, {table['intervention'][i]}: {v}. Predicted: "
                         f"{table['prediction'][i]}; measured: {table['measured'][i]}; control: "
                         f"{table['control'][i]}{figure}.", "", str(table["source"][i])))
    return out


def _inputs_digest(out: Path, manifest: dict[str, Any]) -> str:
    """What the report is made from: the tables, phases and each probe's identity and status."""
    h = hashlib.sha256()
    inputs = (sorted(out.glob("*.csv")) + sorted(out.glob(f"*{SPEC_SUFFIX}")) + [result_path(out, PHASES)]
              + [out / EXPLAIN])
    for path in [p for p in inputs if p.exists()]:
        h.update(path.name.encode() + path.read_bytes())
    keep = ("status", "reason", "spec", "version", "params")
    h.update(json.dumps({n: {k: e.get(k) for k in keep} for n, e in manifest["probes"].items()},
                        sort_keys=True, default=str).encode())
    h.update(json.dumps(manifest.get("weight_decay")).encode())
    return h.hexdigest()


LIVE_REFRESH = 30   # seconds between a browser's reloads of a live report


def build_report(out: Path, run: Run | None = None, force: bool = False, single_file: bool = False,
                 live: dict[str, Any] | None = None) -> Path:
    """Figures for every table (from its probe's stored spec), then report.md and report.html in
    `out`; returns report.html (see `_build`); with `single_file`, also report-single.html with
    the figures embedded, and returns that. `live` (a run still training: its `run_step`,
    `steps`, `analyzed`, `newest`, `pending`, `written`) puts a banner on top that says so, and
    the page reloads itself. Holds the analysis directory's lock."""
    with analysis_lock(out, announce=False):
        html_path = _build(Path(out), run, force, live)
        if single_file:
            return write_single_file(Path(out))
        return html_path


def _build(out: Path, run: Run | None = None, force: bool = False, live: dict[str, Any] | None = None) -> Path:
    """Figures for every table (from its probe's stored spec), then report.md and report.html in
    `out`; returns report.html. Reads only the analysis directory's tables, specs, phases and
    manifest (and the run's metrics, copied to training.csv). Skips the work when nothing it
    reads has changed since the last build (unless `force`)."""
    out = Path(out)
    if not has_manifest(out):
        raise UsageError(f"{out} has no manifest; run `grokscope analyze` first")
    manifest = read_manifest(out)
    phases = read_result(out, PHASES)
    training_path = table_path(out, TRAINING)
    if run is not None:  # the run's own table, copied afresh (same bytes, same digest, when unchanged)
        write_table(training_path, run.metrics)
        known = {"task": run.config.task.name, "weight_decay": run.config.optim.weight_decay} \
            if run.config is not None else {}
        if any(manifest.get(k) != v for k, v in known.items()):
            manifest.update(known)
            write_manifest(out, manifest)
    digest = _inputs_digest(out, manifest) + (json.dumps(live, sort_keys=True) if live else "")
    digest_path = out / ".cache" / "report.digest"
    if (not force and (out / "report.html").exists() and digest_path.exists()
            and digest_path.read_text() == digest):
        return out / "report.html"
    tables: dict[str, Table] = {}
    specs: dict[str, ReportSpec] = {}
    for name, entry in manifest["probes"].items():
        if entry["status"] != "skipped" and table_path(out, name).exists():
            tables[name] = read_table(table_path(out, name))
            specs[name] = read_spec(out, name)
    training = read_table(training_path) if training_path.exists() else None
    others = dict(tables, **({TRAINING: training} if training is not None else {}))

    figures: dict[str, list[str]] = {}
    if training is not None and len(training["step"]):
        figures[TRAINING] = _save(TRAINING_FIGURE, training, phases, others, out)
    for name, table in tables.items():
        if not len(table["step"]):
            continue
        files: list[str] = []
        for spec in specs[name].figures:
            files += _save(spec, table, phases, others, out)
        figures[name] = files
        arts = manifest["probes"][name].setdefault("artifacts", [])
        arts += [f for f in files if f not in arts]
    write_manifest(out, manifest)

    status = {n: e for n, e in manifest["probes"].items()}
    explained = read_table(out / EXPLAIN) if (out / EXPLAIN).exists() else None
    story, extra = summary(phases, tables, specs, training, status, manifest.get("task"),
                           manifest.get("weight_decay"), explained)
    md, body = _render(manifest, phases, story, extra, specs, figures, run, live)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", body)
    atomic_write_text(digest_path, digest)
    return out / "report.html"


def _save(spec: FigureSpec, table: Table, phases, tables, out: Path) -> list[str]:
    """One figure and its data under figures/; a broken spec draws its error instead of
    losing the report. Returns the file names relative to `out`."""
    try:
        fig, data = draw_figure(spec, table, phases, tables), figure_data(spec, table, tables)
    except Exception as e:  # a broken spec must not lose the report
        fig, data = figure(height=spec.height), None
        fig.text(0.5, 0.5, f"plot failed: {type(e).__name__}: {e}", ha="center", wrap=True)
    return [f"{FIGURES}/{f}" for f in save_figure(fig, out / FIGURES / spec.name, data)]


def write_single_file(out: Path) -> Path:
    """report-single.html: report.html with every figure embedded (PNG data URIs), one file to
    send to a colleague."""
    text = (out / "report.html").read_text()

    def embed(match: re.Match) -> str:
        path = out / html.unescape(match.group(1))
        data = base64.b64encode(path.read_bytes()).decode()
        return f"src='data:image/png;base64,{data}'"

    single = re.sub(r"src='(figures/[^']+\.png)'", embed, text)
    single = re.sub(r"<a href='(figures/|[a-z_]+\.csv)[^']*'>([^<]*)</a>", r"\2", single)  # nothing to link to
    path = out / "report-single.html"
    atomic_write_text(path, single)
    return path


def _provenance(run) -> list[str]:
    if run is None:
        return []
    c = run.config
    return [f"run `{run.path}`, status {run.status}",
            f"task {run.info.get('task_description') or c.task.name}, split_seed={c.split_seed}",
            f"model {c.model.name}; {c.optim.name} lr={c.optim.lr} weight_decay={c.optim.weight_decay}; "
            f"{c.train.steps:,} steps, seed {c.train.seed}",
            f"grokscope {run.info.get('grokscope_version')}, torch {run.info.get('torch_version')}"]


def _cite(c: Claim, md: bool) -> str:
    parts = []
    if c.figure:
        parts.append(f"[figure: {c.figure}](#{c.figure})" if md else f"<a href='#{c.figure}'>figure: {c.figure}</a>")
    if c.source:
        parts.append(c.source if md else html.escape(c.source))
    if not parts:
        return ""
    return f" ({'; '.join(parts)})" if md else f" <span class='src'>({'; '.join(parts)})</span>"


def _sentence(text: str, cite: str) -> str:
    """The citation inside the sentence, before its full stop."""
    return text[:-1] + cite + "." if text.endswith(".") else text + cite


def _code(text: str) -> str:
    """Backticks as <code> in HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def live_banner(live: dict[str, Any]) -> str:
    """What a live report says on top: that the run is training, where, what is analyzed and
    pending, and when the page was written."""
    steps = f" of {format_step(live['steps'])}" if live.get("steps") else ""
    newest = (f"; checkpoints analyzed: {live.get('analyzed', 0):,}, the newest at step "
              f"{format_step(live['newest'])}" if live.get("newest") is not None else "; no checkpoint analyzed yet")
    pending = f", {live['pending']:,} pending" if live.get("pending") else ", none pending"
    return (f"Live: the run is training (newest checkpoint at step {format_step(live.get('run_step'))}{steps})"
            f"{newest}{pending}. Written {live.get('written', '')}. This page is rewritten as the analysis "
            "goes on; the final report replaces it when training ends.")


def _render(manifest, phases, story: Narrative, extra: list[str], specs, figures, run,
            live: dict[str, Any] | None = None) -> tuple[str, str]:
    title = f"grokscope report: {Path(manifest['run']).name}"
    md = [f"# {title}", ""]
    h = [page_head(title, refresh=LIVE_REFRESH if live else None), f"<h1>{html.escape(title)}</h1>"]
    if live:
        md += [f"> **{live_banner(live)}**", ""]
        h.append(f"<p class='live' id='live'>{html.escape(live_banner(live))}</p>")
    prov = _provenance(run)
    if prov:
        md += ["## Provenance", ""] + [f"- {p}" for p in prov] + [""]
        h += ["<h2>Provenance</h2><ul>"] + [f"<li>{_code(p)}</li>" for p in prov] + ["</ul>"]

    def paragraph(label: str, claims: list[Claim]) -> None:
        if not claims:
            return
        md.extend([f"**{label}** " + " ".join(_sentence(c.text, _cite(c, True)) for c in claims), ""])
        h.append(f"<p><b>{html.escape(label)}</b> "
                 + " ".join(_sentence(_code(c.text), _cite(c, False)) for c in claims) + "</p>")

    md += ["## Summary", ""]
    h.append("<h2>Summary</h2>")
    # a live report's "when" is about the run so far: its sentences end at the newest step, not the run's end
    paragraph(f"So far (training, at step {format_step(live.get('run_step'))})." if live else "When.", story.when)
    paragraph("Why.", story.why)
    paragraph("Checked and not seen in this run.", story.not_seen)
    if story.not_judged:
        items = [x[0].upper() + x[1:] + "." for x in story.not_judged]
        md += ["**Not judged:**", ""] + [f"- {x}" for x in items] + [""]
        h.append("<p><b>Not judged:</b></p><ul>" + "".join(f"<li>{_code(x)}</li>" for x in items) + "</ul>")
    if extra:
        md += ["**Other measures.** " + " ".join(extra), ""]
        h.append("<p><b>Other measures.</b> " + " ".join(_code(x) for x in extra) + "</p>")

    def add_figure(name: str, heading: str, text: str = "") -> None:
        md.extend([f"<a id='{name}'></a>", "", f"## {heading}", ""] + ([text, ""] if text else []))
        h.append(f"<h2 id='{html.escape(name)}'>{html.escape(heading)}</h2>" + (f"<p>{_code(text)}</p>" if text else ""))
        files = figures.get(name, [])
        for stem in dict.fromkeys(f.rsplit(".", 1)[0] for f in files):
            mine = [f for f in files if f.rsplit(".", 1)[0] == stem]
            short = stem.rsplit("/", 1)[-1]
            md.extend([f"![{short}]({stem}.png)", "",
                       "Files: " + ", ".join(f"[{f.rsplit('/', 1)[-1]}]({f})" for f in mine)
                       + f"; table [{name}.csv]({name}.csv).", ""])
            links = ", ".join(f"<a href='{html.escape(f)}'>{html.escape(f.rsplit('/', 1)[-1])}</a>" for f in mine)
            h.append(f"<figure><img alt='{html.escape(short)}' src='{html.escape(stem)}.png'>"
                     f"<figcaption><small>{links}; table <a href='{html.escape(name)}.csv'>{html.escape(name)}.csv"
                     "</a></small></figcaption></figure>")

    add_figure(TRAINING, "Training curves",
               "Shaded: memorization (orange), circuit formation (blue), cleanup (green); dotted line: the "
               "memorization step, dashed: the generalization step.")
    for name, entry in manifest["probes"].items():
        if entry["status"] == "skipped":
            text = f"Skipped: {entry['reason']}"
        elif entry["status"] == "failed" and name not in figures:
            text = f"Failed: {entry['reason']}"
        else:
            spec = specs.get(name)
            text = entry.get("description", "") or (spec.description if spec else "")
            notes = entry.get("notes") or (spec.notes if spec else "")
            if notes:
                text += f" {notes}"
            if entry["status"] == "failed":
                text += f" (Failed on some checkpoints: {entry['reason']})"
        if name == "phases" and phases:
            text += " " + json.dumps({k: v for k, v in phases.items() if k != "thresholds"})
        add_figure(name, f"Probe: {name}", text)
    h.append(TAIL)
    return "\n".join(md) + "\n", "\n".join(h) + "\n"

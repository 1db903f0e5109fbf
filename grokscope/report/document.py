"""report.md and report.html from an analysis directory's tables (the report reads only tables).

The summary is written from the numbers: when each accuracy threshold was passed, the phases,
and which probe quantities moved before the model generalized.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from grokscope.errors import UsageError
from grokscope.measures.transitions import LOSS_FRACTION, change_span, half_change_step
from grokscope.report.figures import draw_figure, figure, save_figure, training_curves
from grokscope.specs import SPEC_SUFFIX, ReportSpec, read_spec
from grokscope.store import Run, atomic_write_text
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


def _fmt_step(s: Any) -> str:
    return "never" if s is None else f"{int(s):,}"


def transitions(tables: dict[str, Table], specs: dict[str, ReportSpec]) -> list[tuple[int, str, str, float, float]]:
    """(step, probe, column, first value, last value) for every quantity with a clear change,
    leaving out the columns each probe's spec calls quiet."""
    out = []
    for probe, table in tables.items():
        quiet = specs[probe].quiet if probe in specs else ()
        for col, values in table.items():
            if col == "step" or values.dtype.kind != "f" or (quiet and col.startswith(quiet)):
                continue
            s = half_change_step(table["step"], values)
            if s is not None:
                ok = values[np.isfinite(values)]
                out.append((s, probe, col, float(ok[0]), float(ok[-1])))
    return sorted(out)


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
            training: Table | None = None) -> list[str]:
    lines = []
    mem, gen = phases.get("memorization_step"), phases.get("generalization_step")
    if phases.get("diverged_step") is not None:
        lines.append(f"The run diverged at step {phases['diverged_step']:,}: its training loss stopped being "
                     "finite, and training stopped there. Everything below describes the steps before it.")
    if training is not None and not np.isfinite(np.asarray(training["train_acc"], dtype=float)).any():
        lines.append(f"Regression run: train loss fell to {LOSS_FRACTION:.0%} of its initial value at step "
                     f"{_fmt_step(mem)}, test loss at step {_fmt_step(gen)}"
                     + (f" ({gen - mem:,} steps later)." if mem is not None and gen is not None else "."))
    elif gen is not None and mem is not None:
        when = (f"{gen - mem:,} steps after" if gen > mem else f"{mem - gen:,} steps before" if gen < mem
                else "at the same step as")
        lines.append(f"Test accuracy passed 99% at step {gen:,}, {when} train accuracy did (step {mem:,})"
                     + (": no delayed generalization." if gen <= mem else "."))
    elif mem is not None:
        lines.append(f"Train accuracy passed 99% at step {mem:,}; test accuracy never reached 99%.")
    else:
        lines.append("Train accuracy never reached 99%.")
    if phases.get("phases"):
        parts = [f"{p['name']} {p['start']:,}–{p['end']:,}" for p in phases["phases"]]
        lines.append("Phases: " + "; ".join(parts) + ".")
    r1, t1 = phases.get("restricted_loss_below_1_step"), phases.get("test_loss_below_1_step")
    if r1 is not None:
        when = ("before" if t1 is None or r1 < t1 else "after" if r1 > t1 else "at the same step as")
        lines.append(f"Restricted loss fell below 1 at step {r1:,}, {when} test loss"
                     + (f" (step {t1:,})." if t1 is not None else " (which never did)."))
    lines += headline_lines(tables, specs, generalized=gen is not None)
    if gen is not None:
        before = [t for t in transitions(tables, specs) if t[0] < gen]
        if before:
            lines.append("Moved halfway to their final value before the model generalized: "
                         + "; ".join(f"{probe}.{col} (step {s:,}, {a:.3g} → {b:.3g})"
                                     for s, probe, col, a, b in before[:8]) + ".")
    return lines


def _inputs_digest(out: Path, manifest: dict[str, Any]) -> str:
    """What the report is made from: the tables, phases and each probe's identity and status."""
    h = hashlib.sha256()
    inputs = sorted(out.glob("*.csv")) + sorted(out.glob(f"*{SPEC_SUFFIX}")) + [result_path(out, PHASES)]
    for path in [p for p in inputs if p.exists()]:
        h.update(path.name.encode() + path.read_bytes())
    keep = ("status", "reason", "spec", "version", "params")
    h.update(json.dumps({n: {k: e.get(k) for k in keep} for n, e in manifest["probes"].items()},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def build_report(out: Path, run: Run | None = None, force: bool = False) -> Path:
    """Figures for every table (from its probe's stored spec), then report.md and report.html in
    `out`; returns report.html (see `_build`). Holds the analysis directory's lock."""
    with analysis_lock(out, announce=False):
        return _build(Path(out), run, force)


def _build(out: Path, run: Run | None = None, force: bool = False) -> Path:
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
    digest = _inputs_digest(out, manifest)
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

    figures: dict[str, list[str]] = {}
    if training is not None and len(training["step"]):
        figures[TRAINING] = save_figure(training_curves(training, phases), out / TRAINING)
    for name, table in tables.items():
        if not len(table["step"]):
            continue
        files: list[str] = []
        for spec in specs[name].figures:
            try:
                fig = draw_figure(spec, table, phases)
            except Exception as e:  # a broken spec must not lose the report
                fig = figure(height=spec.height)
                fig.text(0.5, 0.5, f"plot failed: {type(e).__name__}: {e}", ha="center")
            files += save_figure(fig, out / spec.name)
        figures[name] = files
        arts = manifest["probes"][name].setdefault("artifacts", [])
        arts += [f for f in files if f not in arts]
    write_manifest(out, manifest)

    lines = summary(phases, tables, specs, training)
    md, body = _render(manifest, phases, lines, specs, figures, out, run)
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "report.html", body)
    atomic_write_text(digest_path, digest)
    return out / "report.html"


def _provenance(run) -> list[str]:
    if run is None:
        return []
    c = run.config
    return [f"run `{run.path}`, status {run.status}",
            f"task {c.task.name} {c.task.op if c.task.name == 'modular' else ''} p={c.task.p} "
            f"frac_train={c.task.frac_train} split_seed={c.split_seed}",
            f"model {c.model.name}; {c.optim.name} lr={c.optim.lr} weight_decay={c.optim.weight_decay}; "
            f"{c.train.steps:,} steps, seed {c.train.seed}",
            f"grokscope {run.info.get('grokscope_version')}, torch {run.info.get('torch_version')}"]


def _render(manifest, phases, lines, specs, figures, out: Path, run) -> tuple[str, str]:
    title = f"grokscope report: {Path(manifest['run']).name}"
    md = [f"# {title}", ""]
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
         "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
         "code{background:#f4f4f4}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    prov = _provenance(run)
    if prov:
        md += ["## Provenance", ""] + [f"- {p}" for p in prov] + [""]
        h += ["<h2>Provenance</h2><ul>"] + [f"<li>{html.escape(p)}</li>" for p in prov] + ["</ul>"]
    md += ["## Summary", ""] + [f"- {line}" for line in lines] + [""]
    h += ["<h2>Summary</h2><ul>"] + [f"<li>{html.escape(line)}</li>" for line in lines] + ["</ul>"]

    def add_figure(name: str, heading: str, text: str = "") -> None:
        md.extend([f"## {heading}", ""] + ([text, ""] if text else []))
        h.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p>{html.escape(text)}</p>" if text else ""))
        files = figures.get(name, [])
        for stem in dict.fromkeys(f.rsplit(".", 1)[0] for f in files):
            mine = [f for f in files if f.rsplit(".", 1)[0] == stem]
            md.extend([f"![{stem}]({stem}.png)", "",
                       f"Figure files: {', '.join(mine)}; data: `{name}.csv`.", ""])
            png = base64.b64encode((out / f"{stem}.png").read_bytes()).decode()
            h.append(f"<img alt='{stem}' src='data:image/png;base64,{png}'>"
                     f"<p><small>{', '.join(mine)}; data {name}.csv</small></p>")

    add_figure(TRAINING, "Training curves",
               "Shaded: memorization (orange), circuit formation (blue), cleanup (green); dotted line: "
               "train accuracy 99%, dashed: test accuracy 99%.")
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
    h.append("</body></html>")
    return "\n".join(md) + "\n", "\n".join(h) + "\n"

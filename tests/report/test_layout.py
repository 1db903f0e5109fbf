"""Figure layout, checked programmatically for every figure grokscope draws: no text overlaps
other text or leaves the canvas, the legend sits off the data, widths are one or two paper
columns, train and test have the same colours everywhere, and PDFs embed TrueType fonts."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex

from grokscope.probes.base import available_probes, resolve_probe
from grokscope.report.document import TRAINING_FIGURE
from grokscope.report.figures import draw_figure, panel_columns, save_figure
from grokscope.report.style import ONE_COLUMN, SPLIT_COLOURS, TWO_COLUMN
from grokscope.specs import FigureSpec, Panel
from grokscope.tables import landscape_table_path, write_table

MARK_COLOUR = "#555555"
STEPS = np.unique(np.concatenate([np.arange(0, 50), np.geomspace(50, 3000, 60).astype(int)]))
PHASES = {"memorization_step": 48, "generalization_step": 2122,
          "phases": [{"name": "memorization", "start": 0, "end": 69},
                     {"name": "circuit formation", "start": 69, "end": 1099},
                     {"name": "cleanup", "start": 1099, "end": 2821}]}


def curve(i: int) -> np.ndarray:
    """Smooth, positive, different per column (some spanning decades, for log axes)."""
    x = STEPS / STEPS[-1]
    return np.exp(-(3 + i % 4) * x) * (1 + i) + 0.01 * (1 + np.sin(5 * x + i))


def synthetic_table(specs) -> dict:
    """Every column the specs' panels name, prefixes expanded to 30 numbered columns."""
    cols = set()
    for spec in specs:
        for p in spec.panels:
            cols |= set(p.columns) | set(p.lines) | ({p.x} - {"step"}) | {s for _, s in p.bands}
            if p.prefix:
                cols |= {f"{p.prefix}{k}" for k in range(30)}
    table = {"step": STEPS}
    for i, c in enumerate(sorted(cols)):
        table[c] = curve(i) if not c.endswith("acc") else 1 - 0.9 * np.exp(-STEPS / (300 * (1 + i % 3)))
    if "weight_norm" in table:
        table["weight_norm"] = np.linspace(60, 15, len(STEPS))
    return table


def training_table() -> dict:
    return {"step": STEPS, "train_loss": curve(0) / 10, "test_loss": curve(1), "train_acc": 1 - np.exp(-STEPS / 30),
            "test_acc": 1 - np.exp(-STEPS / 1500)}


@pytest.fixture(scope="module")
def landscape_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("landscape")
    scale = np.geomspace(0.1, 10, 11)
    write_table(landscape_table_path(d), {
        "scale": scale, "norm": 14.4 * scale, "best_train_loss": np.where(scale < 0.6, 1.0 / scale, 1e-6),
        "best_test_loss": 0.003 + (np.log(scale / 0.63)) ** 2, "best_train_acc": np.full(11, np.nan),
        "best_test_acc": np.full(11, np.nan), "final_train_loss": np.full(11, 1e-6),
        "final_test_loss": np.full(11, 0.1)})
    return d


def every_figure(landscape_dir) -> list[tuple[str, FigureSpec]]:
    """(where, spec) for every figure the built-in probes, the report and the example declare."""
    from grokscope.experiments.landscape import landscape_figure
    from grokscope.measures.landscape import landscape_summary
    from grokscope.tables import read_landscape

    params = {"landscape": {"dir": str(landscape_dir)}}
    out = [("report: training", TRAINING_FIGURE)]
    for name, _origin, _desc in available_probes():
        cls, _ = resolve_probe(name)
        for spec in cls(**params.get(name, {})).report_spec().figures or ():
            out.append((f"probe {name}", spec))
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "attention_entropy.py"
    cls, _ = resolve_probe(f"{example}:AttentionEntropy")
    out += [("example attention_entropy", s) for s in cls().report_spec().figures]
    out.append(("landscape", landscape_figure(landscape_summary(read_landscape(landscape_dir)))))
    return out


def drawn_texts(fig):
    """The Text artists the renderer actually draws, with their boxes in pixels."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-6
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo - span <= tick.get_loc() <= hi + span and tick.label1.get_visible():
                    texts.append(tick.label1)
            texts.append(axis.label)
            texts.append(axis.get_offset_text())
        texts += [ax.title, ax._left_title, ax._right_title]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
    for legend in fig.legends:
        texts += legend.get_texts()
    texts += fig.texts
    out = []
    for t in texts:
        if t.get_visible() and t.get_text().strip():
            box = t.get_window_extent(renderer)
            if box.width > 0 and box.height > 0:
                out.append((t.get_text(), box))
    return out, renderer


def layout_problems(fig) -> list[str]:
    problems = []
    texts, renderer = drawn_texts(fig)
    w, h = fig.bbox.width, fig.bbox.height
    for text, b in texts:
        if b.x0 < -1 or b.y0 < -1 or b.x1 > w + 1 or b.y1 > h + 1:
            problems.append(f"{text!r} leaves the canvas")
    for i, (ta, a) in enumerate(texts):
        for tb, b in texts[i + 1:]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > 1 and dy > 1:
                problems.append(f"{ta!r} overlaps {tb!r}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        lb = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            ab = ax.get_window_extent(renderer)
            if min(lb.x1, ab.x1) - max(lb.x0, ab.x0) > 1 and min(lb.y1, ab.y1) - max(lb.y0, ab.y0) > 1:
                problems.append("the legend overlaps a panel's data area")
    if round(fig.get_figwidth(), 2) not in (ONE_COLUMN, TWO_COLUMN):
        problems.append(f"width {fig.get_figwidth()} in is neither one nor two columns")
    return problems


def split_colours(fig) -> dict[str, set[str]]:
    """Legend labels naming one split -> the colours their lines are drawn in."""
    from grokscope.report.figures import split_of

    seen: dict[str, set[str]] = {"train": set(), "test": set()}
    for ax in fig.axes:
        for line in ax.get_lines():
            split = split_of(line.get_label())
            colour = to_hex(line.get_color())
            if split and not line.get_label().startswith("_") and colour != MARK_COLOUR:  # marks are grey
                seen[split].add(colour)
    return seen


def test_the_list_covers_every_builtin_probe(landscape_dir):
    names = {w.split()[-1] for w, _ in every_figure(landscape_dir)}
    assert {"metrics", "weights", "fourier", "progress", "ntk_spectrum", "ntk_alignment", "kumar_stats", "landscape",
            "parallelogram", "attention_entropy", "training"} <= names


def test_every_figure_passes_the_layout_checks(landscape_dir):
    failures = []
    for where, spec in every_figure(landscape_dir):
        table = synthetic_table([spec])
        fig = draw_figure(spec, table, PHASES, {"training": training_table()})
        failures += [f"{where} / {spec.name}: {p}" for p in layout_problems(fig)]
        colours = split_colours(fig)
        for split, seen in colours.items():
            if seen - {SPLIT_COLOURS[split].lower()}:
                failures.append(f"{where} / {spec.name}: {split} drawn in {sorted(seen)}")
    assert not failures, "\n".join(failures)


def test_the_checks_catch_overlapping_text_a_legend_on_the_data_and_odd_widths():
    """The checks can fail: text on top of text, a legend inside the axes, a 5-inch figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a long label for a line")
    ax.legend(loc="center")
    fig.text(0.5, 0.5, "overlapping text")
    fig.text(0.5, 0.5, "more text on top")
    fig.text(0.99, 0.5, "off the edge of the canvas")
    problems = " ".join(layout_problems(fig))
    assert "overlaps" in problems and "leaves the canvas" in problems
    assert "legend overlaps" in problems and "neither one nor two columns" in problems


def test_heatmaps_use_the_step_axis_and_carry_a_colour_bar():
    spec = FigureSpec("h", panels=(Panel(kind="heatmap", prefix="embed_k", clabel="norm"),))
    fig = draw_figure(spec, synthetic_table([spec]), PHASES)
    heat, bar = fig.axes
    assert heat.get_xlim() == (STEPS[0], STEPS[-1]) and heat.get_xlabel() == "step"
    assert bar.get_label() == "<colorbar>" and bar.get_ylabel() == "norm"


def test_pdfs_embed_truetype_fonts_and_every_figure_has_its_data(tmp_path):
    spec = FigureSpec("m", panels=(Panel(columns=("train_loss", "test_loss")),))
    table = training_table()
    from grokscope.report.figures import figure_data

    names = save_figure(draw_figure(spec, table, PHASES), tmp_path / "m", figure_data(spec, table))
    assert names == ["m.png", "m.pdf", "m.svg", "m.csv"]
    pdf = (tmp_path / "m.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert rows[0] == "panel,title,series,column,x,y" and len(rows) == 1 + 2 * len(STEPS)
    png = io.BytesIO((tmp_path / "m.png").read_bytes())
    from matplotlib.image import imread

    assert imread(png).shape[1] == round(ONE_COLUMN * 200)  # the width drawn, at savefig.dpi


def test_panels_with_nothing_to_draw_are_left_out():
    spec = FigureSpec("x", panels=(Panel(columns=("train_loss",)), Panel(columns=("train_acc",))))
    table = {"step": STEPS, "train_loss": curve(0), "train_acc": np.full(len(STEPS), np.nan)}
    fig = draw_figure(spec, table)
    assert len(fig.axes) == 1 and fig.get_figwidth() == ONE_COLUMN


def test_the_real_tiny_run_figures_pass_too(tiny_run, tmp_path):
    from grokscope.analysis.engine import analyze
    from grokscope.specs import read_spec
    from grokscope.tables import read_table, table_path

    out = tmp_path / "a"
    analyze(tiny_run, ["metrics", "weights", "fourier", "progress", "phases"], out=out, progress=False)
    failures = []
    for name in ("metrics", "weights", "fourier", "progress"):
        for spec in read_spec(out, name).figures:
            fig = draw_figure(spec, read_table(table_path(out, name)), PHASES)
            failures += [f"{name}: {p}" for p in layout_problems(fig)]
    assert not failures, "\n".join(failures)
    assert panel_columns(Panel(prefix="embed_k", kind="heatmap"), read_table(table_path(out, "fourier")))


@pytest.mark.parametrize("value", ["phase", "mean_test_step"])
@pytest.mark.parametrize("n_presets", [1, 2])
def test_sweep_phase_diagrams_pass_the_layout_checks(value, n_presets):
    from grokscope.measures.transitions import LIU_PHASES
    from grokscope.report.figures import figure
    from grokscope.report.sweep import plot_phase_diagram

    keys = ["optim.lr", "optim.weight_decay"]
    rows = [{"preset": f"preset-{k}", "optim.lr": lr, "optim.weight_decay": wd,
             "phase": LIU_PHASES[(i + j) % 4], "mean_test_step": 100.0 * (1 + i * j)}
            for k in range(n_presets) for i, lr in enumerate(np.geomspace(1e-4, 1e-2, 11))
            for j, wd in enumerate(np.geomspace(1e-3, 10, 16))]
    fig = figure(width=ONE_COLUMN if n_presets == 1 else TWO_COLUMN, height=2.8)
    plot_phase_diagram(rows, keys, {k: "log" for k in keys}, fig, value=value)
    assert layout_problems(fig) == []


def test_every_reproduction_figure_passes_the_layout_checks():
    """Each reproduction's figure, drawn from synthetic runs, passes the same checks."""
    from grokscope.report.figures import draw_figure
    from grokscope.reproduce import RunData, figure_to_json, registry
    from grokscope.specs import FigureSpec

    def fake(coords, train_at, test_at):
        step = np.arange(3001)
        acc = lambda at: 1 / (1 + np.exp(-(step - at) / 50))
        return RunData("r", coords, 0, "complete", {"step": step, "train_acc": acc(train_at), "test_acc": acc(test_at),
                                                    "train_loss": 1 - acc(train_at) + 1e-3,
                                                    "test_loss": 1 - acc(test_at) + 1e-3,
                                                    "weight_norm": np.linspace(80, 260, 3001)},
                       {"fixed_norm": 9.0 * coords["scale"]}, {})

    failures = []
    for name, repro in registry().items():
        for scale in ("quick", "full"):
            data = {p.name: [fake({"model.alpha": s, "scale": s, "task.frac_train": 0.5 * s, "optim.lr": 1e-4 * s,
                                   "optim.weight_decay": s - 1}, 900 * s, 1100 * s) for s in (1.0, 2.0)]
                    for p in repro.parts(scale)}
            spec = FigureSpec.from_dict(json.loads(json.dumps(figure_to_json(repro.figure(scale, data)))))
            fig = draw_figure(spec, {})
            failures += [f"{name} {scale}: {p}" for p in layout_problems(fig)]
            for split, seen in split_colours(fig).items():
                if seen - {SPLIT_COLOURS[split].lower()}:
                    failures.append(f"{name} {scale}: {split} drawn in {sorted(seen)}")
    assert not failures, "\n".join(failures)

"""The report: built from tables and specs alone."""

import json
import subprocess
import sys

from helpers import run_cli

from grokscope import FigureSpec, Mark, Panel, Probe
from grokscope.analysis import analyze
from grokscope.report.document import build_report


def test_report_is_deterministic(tiny_run, tmp_path):
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=40, progress=False)
    first = {p.name: p.read_bytes() for p in [*out.iterdir(), *(out / "figures").iterdir()] if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    build_report(out, tiny_run, force=True)
    second = {p.name: p.read_bytes() for p in [*out.iterdir(), *(out / "figures").iterdir()] if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    assert first == second


def test_report_command_rebuilds_from_tables(tiny_run, tmp_path):
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=60, progress=False)
    (out / "report.html").unlink()
    (out / "figures" / "weights.png").unlink()
    r = run_cli("report", out)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists() and (out / "figures" / "weights.png").exists()


def test_a_report_is_rebuilt_without_importing_any_probe(tiny_run, tmp_path):
    """The report draws every figure from the tables and `<probe>.spec.json` alone."""
    out = tmp_path / "a"
    analyze(tiny_run, ["fourier", "weights"], out=out, every=60, progress=False)
    for name, panels in (("fourier", 2), ("weights", 1)):
        spec = json.loads((out / f"{name}.spec.json").read_text())
        assert spec["probe"] == name and len(spec["figures"][0]["panels"]) == panels
        (out / "figures" / f"{name}.png").unlink()
    code = ("import sys; from pathlib import Path; from grokscope.report.document import build_report; "
            f"build_report(Path({str(out)!r}), force=True); "
            "bad = sorted(m for m in sys.modules if m.startswith(('grokscope.probes', 'grokscope.models', "
            "'grokscope.training', 'grokscope.analysis', 'matplotlib.pyplot'))); "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "figures" / "fourier.png").exists() and (out / "figures" / "weights.png").exists()
    assert "**When.** The model memorized its training set at step" in (out / "report.md").read_text()


def test_a_custom_probe_gets_a_figure_for_free_and_can_declare_its_own(tiny_run, tmp_path):
    class Plain(Probe):
        name = "plain"

        def measure(self, ctx):
            return {"a": float(ctx.step), "b": 1.0 + ctx.step ** 2}

    class Declared(Plain):
        name = "declared"

        def figures(self):
            return [FigureSpec("declared", (Panel(columns=("b",), logy=True, marks=(Mark(50, "half"),)),)),
                    FigureSpec("declared_a", (Panel(columns=("a",), title="a alone"),))]

    out = tmp_path / "a"
    analyze(tiny_run, [Plain(), Declared()], out=out, every=40, progress=False)
    assert json.loads((out / "plain.spec.json").read_text())["figures"][0]["panels"][0]["columns"] == []
    for stem in ("plain", "declared", "declared_a"):
        assert (out / "figures" / f"{stem}.svg").stat().st_size > 1000, stem
    md = (out / "report.md").read_text()
    assert "![declared_a](figures/declared_a.png)" in md and "![plain](figures/plain.png)" in md
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"figures/declared.png", "figures/declared_a.png", "declared.spec.json"} <= set(manifest["probes"]["declared"]["artifacts"])


def test_an_analysis_without_spec_files_still_reports(tiny_run, tmp_path):
    """Analysis directories written before spec files existed get the default figures."""
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=60, progress=False)
    (out / "weights.spec.json").unlink()
    (out / "figures" / "weights.png").unlink()
    build_report(out, force=True)
    assert (out / "figures" / "weights.png").exists()


def test_importing_grokscope_leaves_the_matplotlib_backend_alone(tiny_run, tmp_path):
    """A notebook user's inline backend survives `import grokscope` and a report build."""
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=60, progress=False)
    code = ("import matplotlib; matplotlib.use('svg'); import grokscope, grokscope.report.figures, "
            "grokscope.report.sweep; from grokscope.report.document import build_report; "
            f"build_report({str(out)!r}, force=True); "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

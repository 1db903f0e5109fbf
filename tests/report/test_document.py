"""The report: built from tables and specs alone."""

from helpers import run_cli

from grokscope.analysis import analyze


def test_report_is_deterministic(tiny_run, tmp_path):
    from grokscope.report.document import build_report

    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=40, progress=False)
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    build_report(out, tiny_run, force=True)
    second = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf", ".md", ".html")}
    assert first == second


def test_report_command_rebuilds_from_tables(tiny_run, tmp_path):
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=60, progress=False)
    (out / "report.html").unlink()
    (out / "weights.png").unlink()
    r = run_cli("report", out)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists() and (out / "weights.png").exists()

"""`grokscope compare`."""

from helpers import run_cli, tiny_config

from grokscope.tables import read_table
from grokscope.training import train


def test_compare_runs(tiny_run, tmp_path):
    other = train(tiny_config(train={"steps": 120, "seed": 1}), tmp_path / "seed1", progress=False)
    r = run_cli("compare", tiny_run.path, other.path, "--out", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    table = read_table(tmp_path / "c" / "compare.csv")
    assert table["run"].tolist() == ["tiny", "seed1"]
    assert table["memorization_step"][0] == tiny_run.memorization_step
    assert (tmp_path / "c" / "compare.svg").exists() and "| tiny |" in (tmp_path / "c" / "compare.md").read_text()

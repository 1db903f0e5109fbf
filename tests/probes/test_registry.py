"""Finding probes: built-ins, files, modules, entry points; duplicate names refused."""

import json

import numpy as np
import pytest
from helpers import ROOT, run_cli

from grokscope.analysis import analyze
from grokscope.errors import UsageError
from grokscope.probes.base import Probe
from grokscope.tables import read_table

EXAMPLE = ROOT / "docs" / "examples" / "attention_entropy.py"


def test_probe_from_a_file_the_docs_example(tiny_run, tmp_path):
    r = run_cli("analyze", tiny_run.path, "--probe", f"{EXAMPLE}:AttentionEntropy,weights",
                "--every", "60", "--out", tmp_path / "a", "--quiet")
    assert r.returncode == 0, r.stderr
    table = read_table(tmp_path / "a" / "attention_entropy.csv")
    assert table["step"].tolist() == [0, 60, 120]
    # three keys: entropy is between 0 and log 3
    assert ((table["entropy_mean"] > 0) & (table["entropy_mean"] < np.log(3) + 1e-9)).all()
    assert (tmp_path / "a" / "figures" / "attention_entropy.png").exists()
    spec = json.loads((tmp_path / "a" / "attention_entropy.spec.json").read_text())
    assert [p["prefix"] for p in spec["figures"][0]["panels"]] == ["entropy_head", ""]
    assert "Mean attention entropy from the answer position went from" in (tmp_path / "a" / "report.md").read_text()


def test_probe_from_a_module_and_from_an_entry_point(tiny_run, tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "myprobes").mkdir(parents=True)
    (pkg / "myprobes" / "__init__.py").write_text(EXAMPLE.read_text())
    dist = pkg / "myprobes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myprobes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[grokscope.probes]\nattention_entropy = myprobes:AttentionEntropy\n")
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", str(pkg))

    tables = analyze(tiny_run, ["myprobes:AttentionEntropy"], out=tmp_path / "m", every=60, progress=False, report=False)
    assert "entropy_mean" in tables["attention_entropy"]
    tables = analyze(tiny_run, ["attention_entropy"], out=tmp_path / "e", every=60, progress=False, report=False)
    assert "entropy_mean" in tables["attention_entropy"]
    listing = run_cli("probes")
    line = next(l for l in listing.stdout.splitlines() if l.startswith("attention_entropy"))
    assert "entry point myprobes:AttentionEntropy" in line


def test_duplicate_builtin_name_is_refused():
    from grokscope.probes.base import register_probe

    class Again(Probe):
        name = "fourier"

    with pytest.raises(ValueError, match="defined twice: grokscope.probes.fourier.FourierProbe and"):
        register_probe(Again)


def test_two_user_probes_with_one_name_are_refused(tiny_run, tmp_path):
    class Flaky(Probe):
        name = "flaky"

        def measure(self, ctx):
            return {"value": 1.0}

    class A(Flaky):
        pass

    with pytest.raises(UsageError, match="probe name 'flaky' is defined twice"):
        analyze(tiny_run, [Flaky(), A()], out=tmp_path / "a", progress=False)

"""docs/notebook.md, run as a notebook would run it: its cells in order in one fresh process,
each cell's last expression displayed through `_repr_html_`; and the notebook's matplotlib
backend left alone."""

import json
import re
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT

PAGE = ROOT / "docs" / "notebook.md"

DRIVER = textwrap.dedent("""
    import ast, json, sys
    import matplotlib
    matplotlib.use("svg")               # what a notebook chose before importing grokscope
    cells = json.loads(sys.argv[1])
    shown, env = [], {}
    for source in cells:
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), env)
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), env) if last else None
        html = value._repr_html_() if hasattr(value, "_repr_html_") else None
        shown.append({"type": type(value).__name__, "html": html, "repr": repr(value)[:2000]})
    shown.append({"backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules})
    print(json.dumps(shown))
""")


@pytest.mark.slow   # in CI's second pass (scripts/test.sh)
def test_notebook_page_runs_and_displays(tmp_path):
    cells = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(cells) == 4
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cells)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    run, analysis, figures, comparison, state = json.loads(r.stdout.splitlines()[-1])
    assert state == {"backend": "svg", "pyplot": False}
    assert run["type"] == "Run" and "generalized" in run["html"] and run["html"].count("data:image/png;base64,") == 1
    assert analysis["type"] == "Analysis" and "<b>When.</b>" in analysis["html"]
    assert "fourier" in analysis["html"] and analysis["html"].count("data:image/png;base64,") >= 3
    assert "training.png" in figures["repr"] and "fourier.png" in figures["repr"]
    assert comparison["type"] == "Comparison" and "memorization_step" in comparison["html"]
    assert "data:image/png;base64," in comparison["html"]

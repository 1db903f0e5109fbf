"""The layers of docs/architecture.md, held by import-linter's contracts in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def _lint(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_hold():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_a_back_edge_breaks_a_contract(tmp_path):
    """The contracts can fail: a measure that imports the store is caught."""
    shutil.copytree(ROOT / "grokscope", tmp_path / "grokscope", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    fourier = tmp_path / "grokscope" / "measures" / "fourier.py"
    fourier.write_text(fourier.read_text() + "\nfrom grokscope.store import load_run  # noqa\n")
    r = _lint(tmp_path)
    assert r.returncode != 0 and "measures are pure" in r.stdout and "BROKEN" in r.stdout


def test_no_function_is_longer_than_80_lines():
    """A function that does not fit on a screen holds several ideas (issue 27): split it."""
    import ast

    package = Path(__file__).resolve().parents[1] / "grokscope"
    long = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(package)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_the_top_level_holds_at_most_12_modules():
    """Every further idea goes into the package it belongs to (issue 27)."""
    package = Path(__file__).resolve().parents[1] / "grokscope"
    modules = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 12, modules

"""Adding a task is one file: the example in docs/architecture.md, written into the package's
folder, is found by `build_task`, described by `grokscope info`'s line, and trains."""

import importlib
import re
import shutil
from pathlib import Path

from helpers import ROOT

import grokscope.tasks as tasks
from grokscope.config import load_preset, with_overrides
from grokscope.tasks.base import TASK_KINDS


def test_the_documented_task_is_one_file(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "architecture.md").read_text()
    code = re.search(r"`grokscope/tasks/parity.py`:\n\n  ```python\n(.*?)  ```", text, re.S).group(1)
    code = "\n".join(line[2:] for line in code.splitlines())
    package = Path(tasks.__file__).parent
    target = package / "parity.py"
    assert not target.exists()
    try:
        target.write_text(code)
        importlib.reload(tasks)
        config = with_overrides(load_preset("quickstart"), [
            "task.name=parity", "task.p=6", "task.frac_train=0.5", "model.name=mlp", "model.d_embed=0",
            "train.steps=5", "checkpoint.every=5"])
        task = tasks.build_task(config)
        assert tuple(task.all_inputs.shape) == (64, 6) and len(task.train_indices) == 32
        assert tasks.describe_task(config) == "parity of 6 bits frac_train=0.5"
        assert "parity" in tasks.TASKS
        from grokscope.training import train

        run = train(config, tmp_path / "parity", progress=False)
        assert run.status == "complete" and run.info["task_description"] == "parity of 6 bits frac_train=0.5"
    finally:
        target.unlink(missing_ok=True)
        shutil.rmtree(package / "__pycache__" / "parity.cpython-311.pyc", ignore_errors=True)
        TASK_KINDS.pop("parity", None)
        importlib.reload(tasks)

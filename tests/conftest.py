import os
import shutil

import pytest
import torch
from helpers import tiny_config

import grokscope

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 120-step tiny transformer run, trained once per test module."""
    path = tmp_path_factory.mktemp("runs") / "tiny"
    return grokscope.train(tiny_config(train={"steps": 120}), path, progress=False)


@pytest.fixture
def copy_run(tmp_path):
    """copy_run(run): a copy of a run directory in this test's tmp_path, as a Run."""
    def copy(run):
        dst = tmp_path / run.name
        shutil.copytree(run.path, dst)
        return grokscope.load_run(dst)
    return copy

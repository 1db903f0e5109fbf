"""Choosing checkpoints (analysis.selection)."""

import pytest

from grokscope.analysis import select_steps
from grokscope.errors import UsageError


@pytest.mark.parametrize("kw, expected", [
    ({}, [0, 1, 2, 5, 10, 50, 100, 200]),
    ({"every": 50}, [0, 50, 100, 200]),
    ({"steps": "2:60"}, [2, 5, 10, 50]),
    ({"steps": ":5"}, [0, 1, 2, 5]),
    ({"count": 3}, [0, 10, 200]),
])
def test_select_steps(kw, expected):
    assert select_steps([0, 1, 2, 5, 10, 50, 100, 200], **kw) == expected


def test_select_steps_errors():
    with pytest.raises(UsageError, match="no checkpoint matches"):
        select_steps([0, 10], steps="20:30")
    with pytest.raises(UsageError, match="A:B"):
        select_steps([0, 10], steps="a:b")

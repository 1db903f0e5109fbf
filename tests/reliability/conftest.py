"""The fault-injection suite's tally: each test adds what it injected and what it saw; with
GROKSCOPE_RELIABILITY_LOG set, the totals go to that JSON file (bench/reliability.py prints them
for docs/reliability.md)."""

import json
import os
from collections import Counter

import pytest

_TALLY: Counter = Counter()


@pytest.fixture
def tally():
    return _TALLY


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("GROKSCOPE_RELIABILITY_LOG")
    if path and _TALLY:
        old = Counter(json.loads(open(path).read())) if os.path.exists(path) else Counter()
        with open(path, "w") as f:
            json.dump(dict(old + _TALLY), f, indent=1, sort_keys=True)

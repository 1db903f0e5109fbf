"""The fault-injection suite's counts for docs/reliability.md: runs tests/reliability (its slow
part included) with the tally on, and prints what was injected, what resumed identically, how
many inputs were tried and how many tracebacks were seen (failed tests; the goal is zero).

    python bench/reliability.py            # about 6 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    log = Path(tempfile.mkdtemp()) / "tally.json"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider",
                        "tests/reliability"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "GROKSCOPE_RELIABILITY_LOG": str(log)})
    seconds = time.perf_counter() - t0
    summary = r.stdout.strip().splitlines()[-1]
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", summary)) else 0
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", summary)) else 0
    tally = json.loads(log.read_text()) if log.exists() else {}
    print(f"# tests/reliability: {passed} passed, {failed} failed in {seconds:.0f} s\n")
    print("| count | what |\n|---:|---|")
    for key, value in sorted(tally.items()):
        print(f"| {value:,} | {key} |")
    print(f"| {sum(v for k, v in tally.items() if k.startswith('inputs tried')):,} | inputs tried in all |")
    print(f"| {failed} | tracebacks or wrong results seen (failed tests) |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Two analyses of one directory at once: the second waits for the first and reuses its results."""

import json
import threading
import time

from grokscope.analysis import analyze
from grokscope.tables import analysis_lock


def test_a_second_analysis_waits_for_the_first_and_reuses_its_cache(tiny_run, tmp_path, capsys, tally):
    out = tmp_path / "a"
    analyze(tiny_run, ["weights"], out=out, every=40, progress=False, report=False)  # fills the cache
    done = []
    with analysis_lock(out, announce=False):   # an analysis "in progress"
        worker = threading.Thread(target=lambda: done.append(
            analyze(tiny_run, ["weights"], out=out, every=40, progress=True, report=False)))
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive() and not done  # it waits...
    worker.join(60)
    assert done                                # ... and finishes once the lock is free
    assert "waiting for the analysis in progress" in capsys.readouterr().err
    entry = json.loads((out / "manifest.json").read_text())["probes"]["weights"]
    assert entry["n_cached"] == entry["n_ok"] == 4
    tally["concurrent analyses serialized"] += 1

"""`--log wandb` with the real wandb library in offline mode: what lands in the local folder that
`wandb sync` would upload, read back record by record with wandb's own protobuf schema."""

import json
import struct
import sys
import time

import pytest
from helpers import cli, tiny_config

import grokscope
from grokscope.errors import UsageError
from grokscope.store import read_metrics_rows
from grokscope.tracking import run_id

wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")


def records(path):
    """The records of a W&B transaction log (`run-<id>.wandb`: a ':W&B' header, then LevelDB-log
    chunks of 32 KiB blocks), parsed as wandb's `Record` protobufs."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf + chunk if kind == 4 else chunk)
            buf = b""
            yield record
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk


def offline_run(root, wandb_id):
    """{"run": the run record, "history": [{key: value}], "summary": {key: value}, "files": [...]}."""
    folders = list((root / "wandb").glob(f"offline-run-*-{wandb_id}"))
    assert len(folders) == 1, sorted(p.name for p in (root / "wandb").iterdir())
    log = folders[0] / f"run-{wandb_id}.wandb"
    # `run.finish()` can return before wandb's service has written the log's last block (CI saw
    # the first 50 history records only): wait for W&B, then for the log's closing `exit` record.
    wandb.teardown()
    deadline = time.monotonic() + 60
    while [r.WhichOneof("record_type") for r in records(log)][-1:] != ["exit"]:
        assert time.monotonic() < deadline, f"{log} has no exit record after 60 s"
        time.sleep(0.2)
    out = {"history": [], "summary": {}, "run": None,
           "files": sorted(str(p.relative_to(folders[0] / "files")) for p in (folders[0] / "files").rglob("*")
                           if p.is_file())}
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "history":
            out["history"].append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                   for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "grokscope-tests")
    return tmp_path


def test_train_sends_config_every_metric_row_and_the_transitions(offline):
    run = grokscope.train(tiny_config(train={"steps": 80}), offline / "run", progress=False, log="wandb")
    got = offline_run(offline, run_id(run.path, "train"))
    assert got["run"].project == "grokscope-tests" and got["run"].job_type == "train"
    config = {u.key: json.loads(u.value_json) for u in got["run"].config.update}
    assert config["task"]["p"] == 13 and config["optim"]["lr"] == 0.01
    rows = read_metrics_rows(run.path / "metrics.csv")
    history = [h for h in got["history"] if "train_loss" in h]
    assert [h["_step"] for h in history] == [r[0] for r in rows]
    assert [h["test_loss"] for h in history] == pytest.approx([r[3] for r in rows])
    assert got["summary"]["memorization_step"] == run.info["memorization_step"]


def test_analyze_and_sweep_send_tables_figures_and_runs(offline, tiny_run):
    r = cli("analyze", tiny_run.path, "--out", offline / "an", "--probe", "metrics,fourier", "--count", "5",
            "--quiet", "--log", "wandb")
    assert r.returncode == 0, r.stderr
    got = offline_run(offline, run_id(offline / "an", "analyze"))
    keys = set().union(*got["history"])
    assert {"fourier/gini_embed", "metrics/test_loss", "figures/fourier/path", "figures/training/path"} <= keys
    assert any(f.startswith("media/images/figures/fourier") for f in got["files"])
    assert [h["_step"] for h in got["history"] if "fourier/gini_embed" in h] == sorted(
        {h["_step"] for h in got["history"] if "fourier/gini_embed" in h})

    r = cli("sweep", "--preset", "liu-toy", "--grid", "optim.lr=1e-3,3e-3", "--set", "train.steps=50",
            "--jobs", "1", "--out", offline / "sw", "--quiet", "--log", "wandb")
    assert r.returncode == 0, r.stderr
    runs = sorted((offline / "sw" / "runs").iterdir())
    for path in runs:
        one = offline_run(offline, run_id(path, "train"))
        assert one["run"].run_group == "sw" and len([h for h in one["history"] if "train_loss" in h]) == 51
    sweep = offline_run(offline, run_id(offline / "sw", "sweep"))
    keys = set().union(*sweep["history"])
    assert any(k.startswith("phases/") for k in keys) and any(k.startswith("figures/") for k in keys)


def test_a_live_analysis_sends_each_checkpoint_as_it_is_measured_on_the_training_step_axis(offline, tiny_run):
    """The watcher measures the newest checkpoint first, so rows reach W&B out of step order:
    each carries the training step (`step`, the x axis its charts use), none is dropped."""
    from grokscope.analysis.live import Watch

    w = Watch(tiny_run.path, ["weights"], out=offline / "live", batch=3, log="wandb")
    order = []
    while True:
        left = w.poll()
        order.append(left)
        if not left:
            break
    w.finish()
    got = offline_run(offline, run_id(offline / "live", "analyze"))
    rows = [h for h in got["history"] if "weights/weight_norm" in h]
    steps = [h["step"] for h in rows]
    assert sorted(steps) == tiny_run.steps and steps != sorted(steps)     # all of them, newest first
    norms = dict(zip(steps, (h["weights/weight_norm"] for h in rows)))
    assert norms[120] == pytest.approx(float(tiny_run.metrics["weight_norm"][-1]), rel=1e-5)
    assert any(k.startswith("figures/weights") for h in got["history"] for k in h)


def test_tracking_usage_errors(tmp_path, monkeypatch):
    r = cli("train", "--preset", "quickstart", "--log", "mlflow", "--out", tmp_path / "x")
    assert r.returncode == 2 and "mlflow" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.setitem(sys.modules, "wandb", None)              # as if it were not installed
    with pytest.raises(UsageError, match="pip install wandb"):
        grokscope.train(tiny_config(train={"steps": 5}), tmp_path / "y", progress=False, log="wandb")

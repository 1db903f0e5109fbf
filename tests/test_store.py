import pytest
import torch

from grokscope.errors import CorruptFileError, UsageError
from grokscope.files import atomic_write_text, load_tensors, save_tensors
from grokscope.store import load_run
from grokscope.training import train


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_written_files_are_readable_by_others_as_with_open(tmp_path):
    import os

    path = tmp_path / "f.txt"
    atomic_write_text(path, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_safetensors_round_trip_with_metadata(tmp_path):
    t = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_tensors(tmp_path / "x.safetensors", t, {"step": "7"})
    back, meta = load_tensors(tmp_path / "x.safetensors")
    assert meta["step"] == "7" and torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"])


def test_a_flipped_byte_in_the_tensor_data_is_detected(tmp_path):
    """The header says nothing of the data: the CRC-32 written with it does. A file without one (written
    before it was added) loads as before."""
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.arange(64, dtype=torch.float32)}, {"step": "1"})
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"x.safetensors is damaged \(its tensor bytes do not match"):
        load_tensors(path)
    from safetensors.torch import save_file

    save_file({"a": torch.ones(3)}, str(tmp_path / "old.safetensors"), metadata={"step": "2"})
    back, meta = load_tensors(tmp_path / "old.safetensors")
    assert meta == {"step": "2"} and torch.equal(back["a"], torch.ones(3))


def test_truncated_checkpoint_is_detected(tiny, tmp_path):
    run = train(tiny(), tmp_path / "r", progress=False)
    path = run.checkpoint_path(20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"step_00000020.safetensors is truncated \(expected "
                                               rf"{len(data)} bytes, found {len(data) // 2}\).*restore it from a copy"):
        run.model(20)
    path.write_bytes(data[:5])
    with pytest.raises(CorruptFileError, match="not a safetensors file"):
        run.model(20)
    run.model(40)  # the others still load


def test_load_run_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(UsageError, match="no run.json"):
        load_run(tmp_path)


def test_missing_step_lists_steps(tiny, tmp_path):
    run = train(tiny(), tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="no checkpoint at step 33"):
        run.model(33)


def test_a_creation_killed_before_run_json_is_started_again(tiny, tmp_path):
    """A run directory holding only split.json (killed between the two writes of its creation)
    is not 'somebody else's files': training it starts afresh."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "split.json").write_text("{}")
    (out / ".split.json.abc.tmp").write_text("")
    assert train(tiny(train={"steps": 5}), out, progress=False).status == "complete"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not empty and is not a grokscope run"):
        train(tiny(train={"steps": 5}), tmp_path / "other", progress=False)


def test_serialized_bytes_equal_safetensors_torch_for_every_dtype():
    from safetensors.torch import save as torch_save

    from grokscope.files import _canonical_header, _serialize

    tensors = {"w": torch.randn(3, 4), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
               "ids": torch.arange(5), "mask": torch.tensor([True, False]), "f64": torch.randn(2, dtype=torch.float64),
               "rng": torch.randint(0, 255, (7,), dtype=torch.uint8), "half": torch.randn(4).half()}
    meta = {"step": "3", "format": "grokscope"}
    # safetensors writes metadata keys in arbitrary order; the files hold them sorted
    same = lambda t: _canonical_header(_serialize(t, meta)) == _canonical_header(torch_save(t, metadata=meta))
    assert same(tensors)
    with_bf16 = {**tensors, "bf": torch.randn(3).bfloat16()}  # numpy has no bfloat16: torch's path
    assert same(with_bf16)


def test_metrics_rewrite_formats_only_new_rows_and_follows_any_change(tmp_path, monkeypatch):
    from grokscope import store
    from grokscope.store import RunWriter, format_metrics

    writer = RunWriter(tmp_path)
    nan = float("nan")
    rows = [(s, 1 / (s + 1), 0.5, 2.0 + s, nan, 3.0, 1e-3) for s in range(0, 300, 10)]
    formatted = []
    real = store.format_metric_row
    monkeypatch.setattr(store, "format_metric_row", lambda r: formatted.append(r) or real(r))
    writer.rows = list(rows[:20])
    writer.write_metrics()
    writer.rows.extend(rows[20:])
    writer.write_metrics()
    assert len(formatted) == len(rows)  # each row formatted once
    assert (tmp_path / "metrics.csv").read_text() == format_metrics(rows)
    writer.load_rows(100)  # resuming: the rows before step 100, read back from the file
    writer.append((100, 9.0, 1.0, 9.0, 1.0, 9.0, 0.0))
    writer.write_metrics()
    assert (tmp_path / "metrics.csv").read_text() == format_metrics(rows[:10] + [(100, 9.0, 1.0, 9.0, 1.0, 9.0, 0.0)])
    writer.rows[3] = (30, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0)  # a row replaced in place
    writer.write_metrics()
    assert (tmp_path / "metrics.csv").read_text().splitlines()[4] == "30,7.0,7.0,7.0,7.0,7.0,7.0"


def test_unsynced_checkpoints_are_fsynced_before_the_resume_state_and_the_status(tmp_path, monkeypatch):
    import os

    from grokscope.store import RunWriter

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    writer = RunWriter(tmp_path)
    state = {"w": torch.ones(3)}
    writer.save_checkpoint(0, state, sync=False)
    writer.save_checkpoint(10, state, sync=False)
    assert synced == [] and load_tensors(tmp_path / "checkpoints" / "step_00000010.safetensors")[1]["step"] == "10"
    writer.save_resume_state(state, {"step": "10"})
    names = [os.path.basename(p) for p in synced]
    assert names[:2] == ["step_00000000.safetensors", "step_00000010.safetensors"]
    assert len(names) == 4  # then metrics.csv and the resume state, fsynced as they are written
    synced.clear()
    writer.save_checkpoint(20, state, sync=False)
    writer.set_status({}, "complete")
    assert os.path.basename(synced[0]) == "step_00000020.safetensors"
    synced.clear()
    writer.save_checkpoint(30, state)  # the default: fsynced as written
    assert [os.path.basename(p).startswith(".step_00000030") for p in synced] == [True]

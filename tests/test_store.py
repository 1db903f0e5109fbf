import pytest
import torch

from grokscope.errors import CorruptFileError, UsageError
from grokscope.store import atomic_write_text, load_run, load_tensors, save_tensors
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


def test_truncated_checkpoint_is_detected(tiny, tmp_path):
    run = train(tiny(), tmp_path / "r", progress=False)
    path = run.checkpoint_path(20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=r"step_00000020.safetensors is truncated \(expected "
                                               rf"{len(data)} bytes, found {len(data) // 2}\).*--resume"):
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

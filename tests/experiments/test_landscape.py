import json

import numpy as np
import pytest
from helpers import SHARED, TEACHER_STUDENT_FAST, run_cli

from grokscope.config import load_preset, with_overrides
from grokscope.errors import UsageError
from grokscope.experiments.landscape import landscape, parse_scales


def test_parse_scales():
    assert parse_scales("0.1:10:3:log") == [0.1, 1.0, 10.0]
    assert parse_scales("1:3:3:lin") == [1.0, 2.0, 3.0]
    assert parse_scales("0.5,2") == [0.5, 2.0]
    for bad in ("0:1:3", "1:2", "a,b", "1:2:3:cubic"):
        with pytest.raises(UsageError, match="--scales"):
            parse_scales(bad)


def test_small_norm_underfits_large_norm_fits_and_resume(tmp_path):
    config = with_overrides(load_preset("teacher-student"), TEACHER_STUDENT_FAST + ["optim.lr=3e-3"])
    table = landscape(config, [0.05, 1.0], tmp_path / "ls", jobs=1, progress=False)
    small, large = table["best_train_loss"]
    assert small > 20 * large  # at 5% of the init norm the student cannot fit the teacher
    runs = {s: json.loads((tmp_path / "ls" / f"scale_{s:g}" / "run.json").read_text()) for s in (0.05, 1.0)}
    assert runs[1.0]["fixed_norm"] == pytest.approx(table["norm"][1])
    assert table["norm"][0] == pytest.approx(0.05 * table["norm"][1], rel=1e-6)
    assert (tmp_path / "ls" / "landscape.svg").exists()
    # interrupted: one point lost its completion; a re-run trains only that one
    before = (tmp_path / "ls" / "scale_1" / "metrics.csv").read_bytes()
    info_path = tmp_path / "ls" / "scale_0.05" / "run.json"
    info = json.loads(info_path.read_text())
    info["status"] = "interrupted"
    info_path.write_text(json.dumps(info))
    again = landscape(config, [0.05, 1.0], tmp_path / "ls", jobs=1, progress=False)
    assert (tmp_path / "ls" / "scale_1" / "metrics.csv").read_bytes() == before
    np.testing.assert_allclose(again["best_train_loss"], table["best_train_loss"])


@pytest.mark.skipif(not (SHARED / "data" / "mnist").exists(), reason="needs ../shared/data/mnist")
def test_mnist_preset_trains_from_the_data_dir(tmp_path):
    r = run_cli("train", "--preset", "mnist-small", "--data-dir", SHARED / "data" / "mnist",
                "--set", "train.steps=20", "--set", "train.log_every=10", "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    split = json.loads((tmp_path / "m" / "split.json").read_text())
    assert split["n_train"] == 1000 and split["n_total"] == 10000
    r = run_cli("train", "--preset", "mnist-small", "--out", tmp_path / "n", "--quiet")
    assert r.returncode == 2 and "--data-dir" in r.stderr


def test_a_point_run_is_reused_only_at_the_same_config_and_training_code(tmp_path):
    """A landscape (and so `reproduce omnigrok`) refuses to let a run of another config (fewer
    steps: a quick run standing in for a full one) or one trained by other training code (no
    `training_version`, or another) stand in for a point; the message names what differs and the fix."""
    quick = with_overrides(load_preset("teacher-student"), ["train.steps=40", "train.log_every=5"])
    full = with_overrides(quick, ["train.steps=60"])
    landscape(quick, [1.0], tmp_path / "ls", jobs=1, progress=False)
    with pytest.raises(UsageError, match="train.steps: 40 there, 60 now.*another --out or delete"):
        landscape(full, [1.0], tmp_path / "ls", jobs=1, progress=False)
    info_path = tmp_path / "ls" / "scale_1" / "run.json"
    info = json.loads(info_path.read_text())
    assert info["training_version"] >= 1
    del info["training_version"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(UsageError, match="other training code \\(training version unrecorded"):
        landscape(quick, [1.0], tmp_path / "ls", jobs=1, progress=False)

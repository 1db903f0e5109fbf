"""Every file grokscope reads, truncated or garbled in turn: each command either works, giving
what it gives on the intact files, or says what is wrong in one line (exit 1 or 2); no
traceback, ever."""

import fnmatch
import random
import shutil
from pathlib import Path

import pytest
from helpers import cli, tiny_config

from grokscope.analysis import analyze
from grokscope.training import train

ANALYZE = ("analyze", "{run}", "--probe", "weights,fourier", "--every", "40", "--out", "{analysis}", "--quiet")
COMMANDS = {  # what reads the files of each directory
    "run": [("info", "{run}"), ANALYZE, ("compare", "{run}", "--out", "{compare}"),
            ("train", "--resume", "{run}", "--quiet")],
    "analysis": [("report", "{analysis}"), ANALYZE],
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    base = tmp_path_factory.mktemp("damage")
    config = tiny_config(train={"steps": 80}, checkpoint={"every": 40, "log_points": 0, "dense_until": 1})
    run = train(config, base / "run", progress=False)
    analyze(run, ["weights", "fourier"], out=base / "analysis", every=40, progress=False)
    return base


def results(case: Path, command: tuple[str, ...], stdout: str) -> dict[str, bytes]:
    """What a command that exits 0 gives: its output, and the files it writes or brings up to date
    (the paths of the case directory written as `<case>`)."""
    kind = command[0]
    # `info` reports the directory's size on disk, which a truncated or emptied file changes
    lines = [line for line in stdout.splitlines() if not (kind == "info" and line.startswith("disk "))]
    out = {"stdout": "\n".join(lines).replace(str(case), "<case>").encode()}
    # (`train --resume` of a complete run reads only run.json: its answer is what it says)
    patterns = {"analyze": ["analysis/weights.csv", "analysis/fourier.csv"], "compare": ["compare/*.csv"]}.get(kind, [])
    for pattern in patterns:
        for path in sorted(case.glob(pattern)):
            out[str(path.relative_to(case))] = path.read_bytes()
    if kind == "report":
        out["report.md"] = (case / "analysis" / "report.md").read_text().replace(str(case), "<case>").encode()
    return out


def run_commands(case: Path, kind: str):
    """Each command of `kind` on `case`, in turn: (command, completed process)."""
    for command in COMMANDS[kind]:
        args = [a.format(run=case / "run", analysis=case / "analysis", compare=case / "compare") for a in command]
        yield command, cli(*args)


@pytest.fixture(scope="module")
def intact(originals, tmp_path_factory):
    """The results of each directory's commands on an untouched copy."""
    out = {}
    for kind in COMMANDS:
        case = tmp_path_factory.mktemp(f"intact-{kind}")
        shutil.copytree(originals, case, dirs_exist_ok=True)
        for command, r in run_commands(case, kind):
            assert r.returncode == 0, (command, r.stderr)
            out[(kind, command)] = results(case, command, r.stdout)
    return out


def damage(path: Path, how: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # garble: overwrite a stretch in the middle with random bytes
        i = len(data) // 3
        junk = bytes(rng.randrange(256) for _ in range(max(8, len(data) // 10)))
        path.write_bytes(data[:i] + junk + data[i + len(junk):])


# every file of a run directory and an analysis directory that grokscope reads back
FILES = ["run/run.json", "run/split.json", "run/metrics.csv", "run/checkpoints/step_00000000.safetensors",
         "run/checkpoints/step_00000080.safetensors", "run/resume/state.safetensors",
         "analysis/manifest.json", "analysis/phases.json", "analysis/training.csv", "analysis/weights.csv",
         "analysis/weights.spec.json", "analysis/fourier.csv", "analysis/fourier.spec.json",
         "analysis/fourier.npz", "analysis/.cache/hashes.json", "analysis/.cache/fourier/*.json",
         "analysis/.cache/fourier/*.npz"]


def test_the_list_covers_every_stored_file(originals):
    """Every kind of file the two directories hold is damaged by the test below (one checkpoint
    and one cache entry stand for the rest of their kind)."""
    kinds = FILES + ["run/checkpoints/*.safetensors", "analysis/.cache/*/*.json", "analysis/.cache/*/*.npz",
                     "analysis/figures/*.png", "analysis/figures/*.pdf", "analysis/figures/*.svg",
                     "analysis/figures/*.csv", "analysis/report.*",
                     "analysis/.cache/report.digest", "analysis/.cache/analyze.lock"]
    for path in originals.rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(originals))
            assert any(fnmatch.fnmatch(rel, k) for k in kinds), rel


@pytest.mark.parametrize("how", ["garble", pytest.param("truncate", marks=pytest.mark.slow),
                                 pytest.param("empty", marks=pytest.mark.slow)])
@pytest.mark.parametrize("pattern", FILES)
def test_every_stored_file_damaged_in_turn(originals, intact, tmp_path, pattern, how, tally):
    rng = random.Random(f"{pattern} {how}")
    case = tmp_path / "case"
    shutil.copytree(originals, case)
    name = str(sorted(case.glob(pattern))[0].relative_to(case))
    damage(case / name, how, rng)
    kind = name.split("/")[0]
    for command, r in run_commands(case, kind):  # an exception here is a traceback a user would see
        tally["damaged-file commands run"] += 1
        assert r.returncode in (0, 1, 2), (name, how, command, r.returncode)
        assert "Traceback" not in r.stderr
        if r.returncode == 0:   # read with exit 0: what the intact files give, or it should have refused
            got, want = results(case, command, r.stdout), intact[(kind, command)]
            differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            if command[0] == "analyze" and "failed on 1 of" in r.stderr:
                # a damaged checkpoint is reported, and the rows of the others are the intact rows
                for key in [k for k in differ if k.endswith(".csv")]:
                    rows, intact_rows = got[key].decode().splitlines(), want[key].decode().splitlines()
                    assert rows[0] == intact_rows[0] and set(rows[1:]) < set(intact_rows[1:]), (name, how, key)
                differ = [k for k in differ if not k.endswith(".csv")]
                tally["damaged checkpoints reported, the other rows intact"] += 1
            assert not differ, (name, how, command, differ)
            tally["damaged-file commands giving the intact results"] += 1
        if r.returncode:
            errors = [line for line in r.stderr.splitlines() if line.startswith("grokscope: error: ")]
            assert len(errors) == 1 and r.stderr.strip().endswith(errors[0]), (name, how, command, r.stderr)
            tally["damaged-file one-line errors"] += 1
    tally["files damaged"] += 1

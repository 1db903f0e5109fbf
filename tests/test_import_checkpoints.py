"""`grokscope import checkpoints`: a folder of a user's state dicts becomes a run directory."""

import json

import pytest
import torch
from helpers import ROOT, cli, run_cli
from safetensors.torch import save_file
from user_models import HOOKS, Plain

import grokscope
from grokscope.errors import CorruptFileError, UsageError
from grokscope.external.importers import import_checkpoints, step_of
from grokscope.external.recorder import measured_row
from grokscope.store import Run, read_metrics_rows

FACTORY = f"{ROOT / 'tests' / 'user_models.py'}:Plain"
TASK = {"name": "modular", "p": 11, "frac_train": 0.5}


def train_and_save(folder, steps=(0, 5, 10, 40), kind="pt", name="epoch_{}"):
    """Train Plain on a+b mod 11 with a plain loop, saving the state dict at `steps`: the folder a
    user's own script leaves behind."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Plain()
    task = grokscope.build_task(grokscope.RunConfig.from_dict({"task": TASK}))
    x, y = task.train_inputs, task.train_labels
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    saved = {}
    for step in range(max(steps) + 1):
        if step in steps:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            saved[step] = state
            path = folder / (name.format(step) + (".safetensors" if kind == "safetensors" else ".pt"))
            if kind == "safetensors":
                save_file(state, str(path))
            elif kind == "wrapped":
                torch.save({"model_state_dict": state, "epoch": step, "note": "mine"}, path)
            else:
                torch.save(state, path)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return saved


@pytest.mark.parametrize("kind", ["pt", "safetensors", "wrapped"])
def test_a_folder_of_state_dicts_becomes_a_run_with_measured_metrics(tmp_path, kind):
    saved = train_and_save(tmp_path / "ckpts", kind=kind)
    run = import_checkpoints(tmp_path / "ckpts", tmp_path / "run", model=FACTORY, task=TASK, hooks=HOOKS,
                             progress=False)
    assert run.status == "complete" and run.steps == [0, 5, 10, 40]
    for step, state in saved.items():
        got = run.state_dict(step)
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    rows = read_metrics_rows(run.path / "metrics.csv")
    assert [r[0] for r in rows] == [0, 5, 10, 40]
    model = Plain()
    model.load_state_dict(saved[40])
    assert rows[-1][:6] == pytest.approx(measured_row(model, run.task, run.config, 40)[:6])
    assert rows[-1][2] > rows[0][2]                                       # it learned something
    assert run.info["imported"]["format"] == "checkpoints"
    assert run.task.train_indices.tolist() == grokscope.build_task(run.config).train_indices.tolist()


def test_cli_import_then_analyze_with_a_config_file_split_and_step_pattern(tmp_path):
    train_and_save(tmp_path / "ckpts", name="run3_epoch{}")
    (tmp_path / "cfg.toml").write_text('[task]\nname = "modular"\np = 11\n[optim]\nlr = 0.01\n')
    (tmp_path / "split.json").write_text(json.dumps({"train_indices": list(range(0, 121, 3))}))
    r = run_cli("import", "checkpoints", tmp_path / "ckpts", "--model", FACTORY, "--config", tmp_path / "cfg.toml",
                "--split", tmp_path / "split.json", "--step-pattern", r"epoch(\d+)", "--hooks", HOOKS,
                "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    run = Run(tmp_path / "run")
    assert run.steps == [0, 5, 10, 40] and run.config.optim.lr == 0.01
    assert run.task.train_indices.tolist() == list(range(0, 121, 3))
    assert len(run.task.test_indices) == 121 - 41
    r = run_cli("analyze", tmp_path / "run", "--out", tmp_path / "an", "--probe", "metrics,fourier,cka", "--quiet")
    assert r.returncode == 0, r.stderr
    probes = json.loads((tmp_path / "an" / "manifest.json").read_text())["probes"]
    assert all(probes[n]["status"] == "ok" for n in ("metrics", "fourier", "cka"))


def test_bad_folders_get_one_line_that_names_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no .safetensors"):
        import_checkpoints(tmp_path / "empty", tmp_path / "o1", model=FACTORY, task=TASK, progress=False)

    train_and_save(tmp_path / "mixed", steps=(0, 5))
    torch.save(Plain(hidden=7).state_dict(), tmp_path / "mixed" / "epoch_9.pt")
    with pytest.raises(UsageError, match=r"epoch_9\.pt does not fit the model"):
        import_checkpoints(tmp_path / "mixed", tmp_path / "o2", model=FACTORY, task=TASK, progress=False)
    assert not (tmp_path / "o2").exists()                                 # nothing half written

    train_and_save(tmp_path / "nostep", steps=(0,))
    torch.save(Plain().state_dict(), tmp_path / "nostep" / "final.pt")
    with pytest.raises(UsageError, match=r"final\.pt: no step in its name"):
        import_checkpoints(tmp_path / "nostep", tmp_path / "o3", model=FACTORY, task=TASK, progress=False)

    train_and_save(tmp_path / "dup", steps=(5,))
    torch.save(Plain().state_dict(), tmp_path / "dup" / "epoch_05.pt")
    with pytest.raises(UsageError, match="both read as step 5"):
        import_checkpoints(tmp_path / "dup", tmp_path / "o4", model=FACTORY, task=TASK, progress=False)

    train_and_save(tmp_path / "broken", steps=(0,))
    (tmp_path / "broken" / "epoch_3.pt").write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match=r"epoch_3\.pt could not be read"):
        import_checkpoints(tmp_path / "broken", tmp_path / "o5", model=FACTORY, task=TASK, progress=False)

    (tmp_path / "bad_factory.py").write_text("def build():\n    raise ValueError('width must be set')\n")
    with pytest.raises(UsageError, match="bad_factory.py:build failed: ValueError: width must be set"):
        import_checkpoints(tmp_path / "mixed", tmp_path / "o6", model=f"{tmp_path / 'bad_factory.py'}:build",
                           task=TASK, progress=False)
    with pytest.raises(UsageError, match="say which task"):
        import_checkpoints(tmp_path / "mixed", tmp_path / "o7", model=FACTORY, progress=False)


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("import", "checkpoints", tmp_path / "empty", "--model", FACTORY, "--task", "modular")
    assert r.returncode == 2 and "holds no .safetensors" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("import", "checkpoints", tmp_path / "empty", "--task", "modular")
    assert r.returncode == 2 and "needs --model" in r.stderr
    r = cli("import", "nanda", tmp_path / "x.pth", "--model", FACTORY)
    assert r.returncode == 2 and "applies to `import checkpoints`" in r.stderr


def test_step_pattern():
    from pathlib import Path

    assert step_of(Path("model_step_001200.pt"), r"(\d+)") == 1200
    assert step_of(Path("seed3_epoch40.pt"), r"(\d+)") == 40                  # the last number
    assert step_of(Path("seed3_epoch40_v2.pt"), r"epoch(\d+)") == 40
    with pytest.raises(UsageError, match="not a regular expression"):
        step_of(Path("a1.pt"), "(")

"""Import checkpoints made elsewhere into grokscope run directories.

`checkpoints`: a folder of state dicts (`.safetensors`, or `.pt` / `.pth` read with
weights_only=True), one per step, the step read from each file name; the model is built by the
user's factory (`model.name = custom`, models/adapter.py), the task and split come from options
or a small config file, and the metrics are measured from the weights unless a table is given.

`nanda`: the format of Nanda et al. 2023's code release (progress-measures-paper): a torch.save
dict with `model` (state dict, weights in their layout), `config`, `optimizer`, `train_losses`
(every epoch), `test_losses` (every 10 epochs) and `epoch`. Loaded with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import torch

from grokscope.config import load_preset
from grokscope.errors import CorruptFileError, UsageError
from grokscope.store import Run, RunWriter
from grokscope.tasks import build_task, describe_task
from grokscope.version import __version__

FORMATS = ("nanda", "checkpoints")


def nanda_state_dict(theirs: dict[str, torch.Tensor], p: int) -> dict[str, torch.Tensor]:
    """Their layout -> ours (TransformerLens shapes); the `=` logit column is dropped."""
    n_heads, d_head, d_model = theirs["blocks.0.attn.W_Q"].shape
    return {
        "embed.W_E": theirs["embed.W_E"].T,                                   # d_vocab x d_model
        "pos_embed.W_pos": theirs["pos_embed.W_pos"],
        "blocks.0.attn.W_Q": theirs["blocks.0.attn.W_Q"].transpose(1, 2),     # heads x d_model x d_head
        "blocks.0.attn.W_K": theirs["blocks.0.attn.W_K"].transpose(1, 2),
        "blocks.0.attn.W_V": theirs["blocks.0.attn.W_V"].transpose(1, 2),
        "blocks.0.attn.W_O": theirs["blocks.0.attn.W_O"].T.reshape(n_heads, d_head, d_model),
        "blocks.0.mlp.W_in": theirs["blocks.0.mlp.W_in"].T,                   # d_model x d_mlp
        "blocks.0.mlp.b_in": theirs["blocks.0.mlp.b_in"],
        "blocks.0.mlp.W_out": theirs["blocks.0.mlp.W_out"].T,                 # d_mlp x d_model
        "blocks.0.mlp.b_out": theirs["blocks.0.mlp.b_out"],
        "unembed.W_U": theirs["unembed.W_U"][:, :p],                          # d_model x p
    }


def import_nanda(src: str | Path, out: str | Path) -> Run:
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise UsageError(f"{src} does not exist; pass the .pth file of a Nanda et al. run")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: our error is one line
            warnings.simplefilter("ignore")
            data = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptFileError(f"{src} could not be loaded as a weights-only torch file ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(data, dict) or "model" not in data or "config" not in data:
        raise UsageError(f"{src} is not in the Nanda et al. format (a dict with 'model' and 'config')")
    cfg_in = data["config"]
    if cfg_in.get("fn_name", "add") != "add":
        raise UsageError(f"only modular addition runs can be imported (fn_name is {cfg_in.get('fn_name')!r})")
    p, frac, seed = int(cfg_in["p"]), float(cfg_in["frac_train"]), int(cfg_in["seed"])
    groups = data.get("optimizer", {}).get("param_groups", [{}])
    # the optimizer state is the truth about weight decay (the config says 1 in the published file)
    wd = float(groups[0].get("weight_decay", cfg_in.get("weight_decay", 1.0)))
    lr = float(groups[0].get("initial_lr", cfg_in.get("lr", 1e-3)))
    # their loop evaluates, logs, then updates; the saved weights are after the update of the
    # last logged epoch, so they are step epoch + 1 in grokscope's numbering
    epoch = int(data.get("epoch", 0))
    final_step = epoch + 1
    theirs = data["model"]
    n_heads, d_head, d_model = theirs["blocks.0.attn.W_Q"].shape
    base = load_preset("nanda")
    config = dataclasses.replace(
        base, name=out.name, description=f"imported from {src.name} (Nanda et al. 2023 format)",
        task=dataclasses.replace(base.task, p=p, frac_train=frac, split_seed=seed),
        model=dataclasses.replace(base.model, d_model=d_model, n_heads=n_heads, d_head=d_head,
                                  d_mlp=theirs["blocks.0.mlp.W_in"].shape[0]),
        optim=dataclasses.replace(base.optim, lr=lr, weight_decay=wd),
        train=dataclasses.replace(base.train, steps=final_step, seed=seed))
    task = build_task(config)
    writer = RunWriter(out)
    writer.check_new(config)

    state = nanda_state_dict(theirs, p)
    from grokscope.models import build_model

    model = build_model(config, task)
    model.load_state_dict(state)  # checks every name and shape
    from grokscope.external.recorder import measured_row

    final = measured_row(model, task, config, final_step, lr=0.0)

    # their logs: train loss every epoch, test loss every 10 epochs; accuracies were not logged
    train_losses = [float(x) for x in data.get("train_losses", [])]
    test_losses = [float(x) for x in data.get("test_losses", [])]
    nan = float("nan")
    rows = [(10 * i, train_losses[10 * i] if 10 * i < len(train_losses) else nan, nan, t, nan, nan, nan)
            for i, t in enumerate(test_losses) if 10 * i <= epoch]
    rows.append(final)

    imported = {"format": "nanda", "source": str(src), "stored_train_loss": _scalar(data.get("train_loss")),
                "stored_test_loss": _scalar(data.get("test_loss")), "stored_at_step": epoch,
                "config": {k: str(v) for k, v in cfg_in.items()}}
    split = task.split_dict("random.seed(seed); random.shuffle(row-major pairs); first int(frac_train * n) "
                            "are train (Nanda et al.'s code)", seed)
    # accuracies were not logged, so the transition steps are unknown
    return write_imported(writer, config, split, [(final_step, model.state_dict(), src.name)], rows, imported,
                          transitions=False)


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float("nan") if value is None else float(value)


def write_imported(writer: RunWriter, config, split: dict, states, rows: list[tuple], imported: dict, *,
                   transitions: bool = True) -> Run:
    """The one way an import writes its run directory: run.json (`imported` says from what),
    split.json, the checkpoints ((step, state dict, source file name) in step order), the metrics
    and the status. Every file is written atomically; the run is `complete` last."""
    from grokscope.measures.transitions import transition_steps

    states = list(states)
    steps = [step for step, _, _ in states]
    info = {"grokscope_version": __version__, "torch_version": torch.__version__,
            "config": config.to_dict(), "task_description": describe_task(config), "status": "running",
            "schedule": steps,
            "n_params": sum(v.numel() for v in states[-1][1].values() if v.is_floating_point()),
            "imported": imported}
    writer.create(info, split)
    for step, state, name in states:
        writer.save_checkpoint(step, state, imported_from=name)
    writer.rows = list(rows)
    writer.write_metrics()
    memorized, generalized = transition_steps(writer.metrics()) if transitions else (None, None)
    writer.set_status(writer.read_info(), "complete", memorization_step=memorized, generalization_step=generalized)
    return Run(writer.path)


# ---------------------------------------------------------------- a folder of checkpoints

SUFFIXES = (".safetensors", ".pt", ".pth")
STATE_KEYS = ("model", "state_dict", "model_state_dict", "model_state")


def step_of(path: Path, pattern: str) -> int:
    """The step in a file name: the last match of `pattern` in its stem (its first group when it
    has one)."""
    try:
        matches = list(re.finditer(pattern, path.stem))
    except re.error as e:
        raise UsageError(f"--step-pattern {pattern!r} is not a regular expression ({e})") from None
    if not matches:
        raise UsageError(f"{path.name}: no step in its name (pattern {pattern!r}); rename it or pass "
                         "--step-pattern, e.g. 'epoch(\\d+)'")
    text = matches[-1].group(1) if matches[-1].groups() else matches[-1].group(0)
    if not text.isdigit():
        raise UsageError(f"{path.name}: {text!r} is not a step number (pattern {pattern!r})")
    return int(text)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a weights-only torch file (a bare state dict, or a
    dict holding one under model / state_dict / model_state_dict)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptFileError(f"{path} could not be read ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                               "it must be a safetensors file or a torch.save'd state dict") from None
    if isinstance(data, dict):
        for key in STATE_KEYS:
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(torch.is_tensor(v) for v in data.values()):
        raise UsageError(f"{path} holds no state dict (a dict of tensors, or one under "
                         f"{' / '.join(STATE_KEYS)})")
    return data


def read_config_file(path: Path) -> dict:
    """Config sections from a JSON or TOML file ({"task": {...}, "optim": {...}, ...})."""
    import json

    import tomllib

    if not path.is_file():
        raise UsageError(f"config file {path} does not exist")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a table of config sections")
    return data


def read_split_file(path: Path) -> tuple[list[int], list[int] | None]:
    import json

    if not path.is_file():
        raise UsageError(f"split file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise UsageError(f"{path} is not valid JSON ({e})") from None
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict) or "train_indices" not in data:
        raise UsageError(f"{path} must hold train_indices (and optionally test_indices): rows of the task's "
                         "row-major grid")
    return data["train_indices"], data.get("test_indices")


def import_checkpoints(src: str | Path, out: str | Path, *, model: str, task: str | dict | None = None,
                       config: str | Path | dict | None = None, overrides: list[str] = (),
                       split: str | Path | None = None, step_pattern: str = r"(\d+)", hooks: str = "",
                       progress: bool = True) -> Run:
    """A run directory from a folder of checkpoints (module docstring). `model`: the factory
    ("module:function" or "path/file.py:function"); `task`: a task name or table (or in the
    config file's [task]); `config`: a JSON/TOML file or a dict of sections; `overrides`:
    `section.key=value` strings; `split`: a JSON file of train_indices (and test_indices)."""
    from grokscope.config import with_overrides
    from grokscope.console import ProgressLine
    from grokscope.external.recorder import external_config, measured_row, split_for
    from grokscope.models import build_model

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UsageError(f"{src} is not a folder; pass the folder that holds the checkpoint files")
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise UsageError(f"{src} holds no .safetensors, .pt or .pth files")
    by_step: dict[int, Path] = {}
    for path in files:
        step = step_of(path, step_pattern)
        if step in by_step:
            raise UsageError(f"{by_step[step].name} and {path.name} both read as step {step:,}; pass a "
                             "--step-pattern that tells them apart")
        by_step[step] = path
    steps = sorted(by_step)
    data = read_config_file(Path(config)) if isinstance(config, (str, Path)) else dict(config or {})
    if task is None and "task" not in data:
        raise UsageError("say which task the checkpoints were trained on: --task modular (with --set task.p=...) "
                         "or a config file with a [task] table")
    cfg = external_config(task, max(steps[-1], 1), model, data, name=out.name, hooks=hooks)
    cfg = with_overrides(cfg, list(overrides)) if overrides else cfg
    from grokscope.tasks import build_task

    train_idx, test_idx = read_split_file(Path(split)) if split is not None else (None, None)
    task_obj, split_dict = split_for(build_task(cfg), cfg, train_idx, test_idx)
    writer = RunWriter(out)
    writer.check_new(cfg)
    net = build_model(cfg, task_obj)
    states, rows = [], []
    bar = ProgressLine(len(steps), label="checkpoint", enabled=progress)
    for i, step in enumerate(steps):
        path = by_step[step]
        state = read_state_dict(path)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
            raise UsageError(f"{path.name} does not fit the model from {model}: {lines[0] if lines else e}"
                             [:400]) from None
        states.append((step, {k: v.detach().clone() for k, v in net.state_dict().items()}, path.name))
        rows.append(measured_row(net, task_obj, cfg, step))
        bar.update(i + 1)
    bar.close()
    imported = {"format": "checkpoints", "source": str(src.resolve()), "step_pattern": step_pattern,
                "files": len(files)}
    return write_imported(writer, cfg, split_dict, states, rows, imported)


def import_run(fmt: str, src: str | Path, out: str | Path, **options) -> Run:
    if fmt == "nanda":
        return import_nanda(src, out)
    if fmt == "checkpoints":
        if not options.get("model"):
            raise UsageError("import checkpoints needs --model module:function (or path/file.py:function), "
                             "the function that builds the model the checkpoints belong to")
        return import_checkpoints(src, out, **options)
    raise UsageError(f"unknown import format {fmt!r}; known: {', '.join(FORMATS)}")

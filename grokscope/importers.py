"""Import checkpoints published by other codebases into grokscope run directories.

`nanda`: the format of Nanda et al. 2023's code release (progress-measures-paper): a torch.save
dict with `model` (state dict, weights in their layout), `config`, `optimizer`, `train_losses`
(every epoch), `test_losses` (every 10 epochs) and `epoch`. Loaded with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import torch

from grokscope.config import load_preset
from grokscope.errors import CorruptFileError, UsageError
from grokscope.store import Run, RunWriter
from grokscope.tasks import build_task
from grokscope.version import __version__

FORMATS = ("nanda",)


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
    with torch.no_grad():
        logits = model(task.all_inputs).to(torch.float64)
    F = torch.nn.functional
    final = (F.cross_entropy(logits[task.train_indices], task.train_labels).item(),
             (logits[task.train_indices].argmax(-1) == task.train_labels).double().mean().item(),
             F.cross_entropy(logits[task.test_indices], task.test_labels).item(),
             (logits[task.test_indices].argmax(-1) == task.test_labels).double().mean().item())
    norm = math.sqrt(sum(float(v.double().pow(2).sum()) for v in state.values()))

    # their logs: train loss every epoch, test loss every 10 epochs; accuracies were not logged
    train_losses = [float(x) for x in data.get("train_losses", [])]
    test_losses = [float(x) for x in data.get("test_losses", [])]
    nan = float("nan")
    rows = [(10 * i, train_losses[10 * i] if 10 * i < len(train_losses) else nan, nan, t, nan, nan, nan)
            for i, t in enumerate(test_losses) if 10 * i <= epoch]
    rows.append((final_step, *final, norm, 0.0))

    writer.create({
        "grokscope_version": __version__, "torch_version": torch.__version__,
        "config": config.to_dict(), "status": "running", "schedule": [final_step],
        "n_params": sum(v.numel() for v in state.values()),
        "imported": {"format": "nanda", "source": str(src), "stored_train_loss": _scalar(data.get("train_loss")),
                     "stored_test_loss": _scalar(data.get("test_loss")), "stored_at_step": epoch,
                     "config": {k: str(v) for k, v in cfg_in.items()}},
    }, task.split_dict("random.seed(seed); random.shuffle(row-major pairs); first int(frac_train * n) "
                       "are train (Nanda et al.'s code)", seed))
    writer.save_checkpoint(final_step, model.state_dict(), imported_from=src.name)
    for row in rows:
        writer.append(row)
    writer.write_metrics()
    info = writer.read_info()
    # accuracies were not logged, so the transition steps are unknown
    writer.set_status(info, "complete", memorization_step=None, generalization_step=None)
    return Run(out)


def _scalar(value) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float("nan") if value is None else float(value)


def import_run(fmt: str, src: str | Path, out: str | Path) -> Run:
    if fmt == "nanda":
        return import_nanda(src, out)
    raise UsageError(f"unknown import format {fmt!r}; known: {', '.join(FORMATS)}")

"""Hookable models (TransformerLens `HookedRootModule` + `HookPoint`). `build_model(config, task)`."""

from __future__ import annotations

from torch import nn

from grokscope.config import RunConfig
from grokscope.errors import UsageError

MODELS = ("transformer", "mlp", "committee", "toy", "lstm", "custom")


def build_model(config: RunConfig, task) -> nn.Module:
    """The model a config names, sized for the task, initialised from the current torch seed."""
    m = config.model
    if m.name == "custom":
        from grokscope.models.adapter import Adapted

        return Adapted(custom_model(m.factory, task), m.hooks)
    continuous = getattr(task, "is_continuous", False)
    if m.name != "toy" and getattr(task, "name", "").startswith("toy_"):
        raise UsageError(f"task {task.name} is Liu et al.'s toy task; use model.name=toy")
    if continuous and m.name not in ("committee", "mlp"):
        raise UsageError(f"task {task.name} has real-valued inputs; use model.name=mlp (or committee)")
    if m.name == "transformer":
        from grokscope.models.transformer import Transformer

        return Transformer(task.vocab_size, task.n_classes, task.n_ctx, n_layers=m.n_layers,
                           d_model=m.d_model, n_heads=m.n_heads, d_head=m.d_head, d_mlp=m.d_mlp,
                           act=m.act, layernorm=m.layernorm, fast=m.fast,
                           init_scale=m.init_scale)
    if m.name == "mlp":
        from grokscope.models.mlp import MLP

        n_out = task.n_classes or (task.all_labels.shape[1] if task.all_labels.dim() > 1 else 1)
        return MLP(task.vocab_size, n_out, task.n_ctx, d_embed=m.d_embed,
                   hidden=m.hidden, act=m.act, bias=m.bias, init_scale=m.init_scale,
                   alpha=m.alpha, centered=m.centered, init=m.init,
                   d_input=task.all_inputs.shape[1] if continuous else 0)
    if m.name == "committee":
        from grokscope.models.committee import Committee

        if task.name != "polynomial":
            raise UsageError("model.name=committee needs task.name=polynomial")
        return Committee(task.all_inputs.shape[1], m.hidden[0], alpha=m.alpha, eps=m.eps,
                         centered=m.centered, init_scale=m.init_scale)
    if m.name == "toy":
        from grokscope.models.toy import Toy

        if not task.name.startswith("toy_"):
            raise UsageError("model.name=toy needs task.name=toy_add or toy_permutation")
        n_out = task.targets.shape[1] if config.train.loss == "target_mse" else task.n_classes
        # the notebooks' unused encoder maps the input templates (addition: one per symbol; S3:
        # a scalar) to the embedding width
        n_in = task.vocab_size if task.name.startswith("toy_add") else 1
        unused = (n_in, *m.hidden, m.d_embed) if config.task.draws == "notebook" else ()
        return Toy(task.vocab_size, n_out, d_embed=m.d_embed, hidden=m.hidden, act=m.act,
                   compose=m.compose, init_scale=m.init_scale, embed_scale=m.embed_scale,
                   unused_encoder=unused)
    if m.name == "lstm":
        from grokscope.models.lstm import LSTM

        return LSTM(task.vocab_size, task.n_classes, d_embed=m.d_embed or m.d_model,
                    d_hidden=m.d_model, n_layers=m.n_layers, init_scale=m.init_scale)
    raise UsageError(f"unknown model.name {m.name!r}; choose one of {', '.join(MODELS)}")


def custom_model(factory: str, task) -> nn.Module:
    """A user's model: `factory` ("module:function" or "path/file.py:function") called with no
    arguments, or with the task when it takes one. Any `nn.Module`; it is called on the task's
    inputs and must return what grokscope's models return (logits at the answer position)."""
    import inspect

    from grokscope.loading import load_object

    if not factory:
        raise UsageError("model.name=custom needs model.factory (module:function or path/file.py:function "
                         "that returns your nn.Module)")
    fn = load_object(factory, "model factory")
    if not callable(fn):
        raise UsageError(f"model factory {factory} is not callable")
    try:
        required = [p for p in inspect.signature(fn).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    try:
        model = fn(task) if required else fn()
    except Exception as e:
        raise UsageError(f"model factory {factory} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                         ) from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"model factory {factory} returned {type(model).__name__}, not a torch.nn.Module")
    return model

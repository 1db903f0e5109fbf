"""A user's plain `nn.Module` seen through grokscope's names (`model.name = "custom"`).

`model.hooks` maps our names to the user's module paths, comma-separated:

    embed=embed, unembed=mlp.2, hook_embed=embed, blocks.0.mlp.hook_post=mlp.1

- `embed`: a module whose `weight` is (vocab, width), e.g. `nn.Embedding`: read as `W_E`;
- `unembed`: a module whose `weight` is (n_classes, width), e.g. `nn.Linear`: read as `W_U`
  (its transpose, TransformerLens's layout);
- a TransformerLens hook name (`hook_embed`, `blocks.0.mlp.hook_post`, ...): the output of that
  module, exposed through a `HookPoint` by a forward hook, so `run_with_cache`, `run_with_hooks`
  and activation patching work as on our own models.

The wrapper's `state_dict` is the user's model's own, so checkpoints a user saved load as they are.
"""

from __future__ import annotations

from types import SimpleNamespace

from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokscope.errors import UsageError
from grokscope.models import register_model

WEIGHT_NAMES = ("embed", "unembed")


def parse_hooks(text: str) -> dict[str, str]:
    """`ours=theirs, ...` -> {ours: theirs}."""
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise UsageError(f"model.hooks entries are ours=module.path, got {item.strip()!r}")
        ours = ours.strip()
        if ours not in WEIGHT_NAMES and not ours.split(".")[-1].startswith("hook_"):
            raise UsageError(f"model.hooks: {ours!r} is neither embed, unembed nor a hook name (hook_embed, "
                             "blocks.0.mlp.hook_post, ...)")
        out[ours] = theirs.strip()
    return out


class Adapted(HookedRootModule):
    """The user's model (`inner`), with HookPoints at the mapped modules' outputs and `embed.W_E`
    / `unembed.W_U` views of the mapped weights."""

    def __init__(self, model: nn.Module, hooks: dict[str, str] | str = ""):
        super().__init__()
        self.inner = model
        self.names = parse_hooks(hooks) if isinstance(hooks, str) else dict(hooks)
        modules = dict(model.named_modules())
        for ours, theirs in self.names.items():
            if theirs not in modules:
                raise UsageError(f"model.hooks: the model has no module {theirs!r} (for {ours}); its modules: "
                                 f"{', '.join(n for n in modules if n) or 'none'}")
            if ours in WEIGHT_NAMES and not isinstance(getattr(modules[theirs], "weight", None), Tensor):
                raise UsageError(f"model.hooks: {theirs} has no weight tensor to read as {ours}")
        points = {ours: HookPoint() for ours in self.names if ours not in WEIGHT_NAMES}
        self.points = nn.ModuleList(points.values())
        self.setup()
        # HookPoints under our names (which hold dots a ModuleDict key may not)
        for name in [n for n in self.hook_dict if n.startswith("points.")]:
            del self.hook_dict[name], self.mod_dict[name]
        for ours, point in points.items():
            point.name = ours
            self.hook_dict[ours] = self.mod_dict[ours] = point
            modules[self.names[ours]].register_forward_hook(lambda mod, args, out, point=point: point(out))

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)

    def _weight(self, ours: str) -> Tensor | None:
        theirs = self.names.get(ours)
        return None if theirs is None else dict(self.inner.named_modules())[theirs].weight

    @property
    def embed(self):
        weight = self._weight("embed")
        return SimpleNamespace(W_E=weight) if weight is not None else None

    @property
    def unembed(self):
        weight = self._weight("unembed")
        return SimpleNamespace(W_U=weight.T) if weight is not None else None

    @property
    def neuron_hook(self) -> str | None:
        """The last mapped MLP activation (`blocks.N.mlp.hook_post`), the neurons probes read."""
        posts = sorted(n for n in self.names if n.endswith("mlp.hook_post"))
        return posts[-1] if posts else None

    # checkpoints hold the user's own parameter names
    def state_dict(self, *args, **kwargs):
        return self.inner.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.inner.load_state_dict(state_dict, strict=strict, assign=assign)


def adapt(model: nn.Module, hooks: str = "") -> nn.Module:
    """Our own models as they are; any other module wrapped (Adapted)."""
    if isinstance(model, HookedRootModule):
        return model
    return Adapted(model, hooks)


def can_provide(model: nn.Module, need: str) -> bool | str:
    """Whether a user's model (Adapted) gives what a probe needs (probes.base.NEEDS); a string says
    what to map. grokscope's own models give what their probes need (their `applies_to` says
    when a probe does not fit a model kind)."""
    if not isinstance(model, Adapted) or need in ("outputs", "parameters"):
        return True
    if need == "embeddings":
        return True if model.embed is not None else (
            "token embeddings: map them with model.hooks=\"embed=<module path>\" (an nn.Embedding)")
    if need == "unembedding":
        return True if model.unembed is not None else (
            "the unembedding: map it with model.hooks=\"unembed=<module path>\" (the last nn.Linear)")
    if need == "neurons":
        return True if model.neuron_hook else (
            "MLP neuron activations: map them with model.hooks=\"blocks.0.mlp.hook_post=<module path>\"")
    if need == "activations":
        return True if model.hook_dict else (
            "named activations: map them with model.hooks=\"hook_embed=<module>,blocks.0.mlp.hook_post=<module>\"")
    if need == "grokscope-model":
        return "one of grokscope's own model kinds (its parameters by name)"
    raise ValueError(f"unknown need {need!r}")


__all__ = ["Adapted", "adapt", "can_provide", "parse_hooks"]


@register_model("custom")
def _build(config, task) -> nn.Module:
    return Adapted(custom_model(config.model.factory, task), config.model.hooks)


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

"""The probe API (DESIGN.md, "Contract: probe API") and the probe registry.

A probe maps one checkpoint (plus the task's data) to named scalars and, optionally, arrays:

    class AttentionEntropy(grokscope.Probe):
        name = "attention_entropy"
        version = "1"
        def measure(self, ctx):
            ...
            return {"entropy": value}

Probes are found, in this order, among the built-ins (`@register_probe`), the entry-point group
`grokscope.probes`, and `module:Class` or `path/to/file.py:Class` specs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from grokscope.errors import UsageError
from grokscope.loading import load_object
from grokscope.specs import FigureSpec, Headline, ReportSpec, default_figures

ENTRY_POINT_GROUP = "grokscope.probes"


@dataclass
class ProbeResult:
    """What `measure` may return: scalar columns, and arrays saved to `<probe>.npz`."""

    scalars: dict[str, float | str]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


NEEDS = {
    "outputs": "the model's outputs on task inputs",
    "parameters": "the parameters",
    "embeddings": "token embeddings (embed.W_E)",
    "unembedding": "the unembedding (unembed.W_U)",
    "neurons": "MLP neuron activations (blocks.N.mlp.hook_post)",
    "activations": "named activations (hook points)",
    "grokscope-model": "one of grokscope's own model kinds",
}


def needs_text(cls) -> str:
    if cls.scope == "run":
        return " [needs: the other probes' tables]"
    return f" [needs: {', '.join(cls.needs)}]" if cls.needs else ""


def unmet_need(probe: "Probe", model: torch.nn.Module) -> str | None:
    """Why `model` (a user's plain model, models/adapter.py) cannot give what `probe` needs, or None."""
    from grokscope.models.adapter import can_provide

    for need in probe.needs:
        ok = can_provide(model, need)
        if ok is not True:
            return f"needs {ok}"
    return None


class Probe:
    """Subclass, set `name` and `version`, implement `measure(ctx)`.

    `params` holds the probe's settings (defaults in the class attribute `defaults`); they are
    part of the cache key, so changing one recomputes. `scope = "run"` probes (like `phases`)
    see the finished tables instead of a checkpoint: they implement `measure_run(run, tables)`.
    """

    name: str = ""
    version: str = "1"
    description: str = ""
    defaults: dict[str, Any] = {}
    scope: str = "checkpoint"
    needs: tuple[str, ...] = ()    # what of a model it reads (NEEDS); a user's plain model is checked for it
    aliases: tuple[str, ...] = ()  # other names `--probe` and `--param` accept for it

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise UsageError(f"probe {self.name!r} has no parameter {unknown[0]!r}; its parameters: {known}")
        self.params = {**self.defaults, **params}

    def applies_to(self, run) -> bool | str:
        """True, or False / a string saying why this probe cannot run on this run."""
        return True

    def measure(self, ctx: "ProbeContext") -> dict[str, float | str] | ProbeResult:
        raise NotImplementedError

    def measure_run(self, run, tables: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        raise NotImplementedError

    def run_inputs(self, ctx: "ProbeContext") -> Any:
        """What every checkpoint's result depends on besides that checkpoint and `params`, as
        JSON (default None: nothing). A probe that reads another checkpoint (`ctx.final`,
        `ctx.first`, `ctx.reference`) or a file returns what it read from it: the key frequencies
        of the final checkpoint, its hash (`ctx.checkpoint_hash`). It is part of the cache key, so
        a run that trains on past its old final checkpoint, or a watcher that measured while it
        was training, recomputes exactly the results that changed. `ctx` has no checkpoint of
        its own (`ctx.model` is None)."""
        return None

    def figures(self) -> list[FigureSpec]:
        """The probe's figures as data (which columns, axes, log scales, reference lines); the
        report draws them. Default: every numeric column against step."""
        return list(default_figures(self.name))

    def headlines(self) -> list[Headline]:
        """Columns the report's summary states in words (default: none)."""
        return []

    #: column prefixes the report's "what moved before generalization" summary leaves out
    quiet: tuple[str, ...] = ()
    notes: str = ""

    def report_spec(self) -> ReportSpec:
        """Everything the report needs of this probe, stored as `<probe>.spec.json`."""
        return ReportSpec(self.name, self.description, self.notes, tuple(self.figures()),
                          tuple(self.headlines()), tuple(self.quiet))

    def cache_key(self) -> str:
        text = json.dumps({"name": self.name, "version": str(self.version), "params": self.params},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class ProbeContext:
    """What a probe sees at one checkpoint.

    `model` (loaded with that checkpoint's weights, eval mode), `step`, `task`, `run`, `device`;
    `reference(step)` loads another checkpoint; `first` and `final` are the first and last
    checkpoints of the run. `memo(key, fn)` computes something once per checkpoint and shares it
    between probes (e.g. the logits on every input); `run_memo` does the same for the whole run.
    """

    def __init__(self, run, step: int | None, model: torch.nn.Module | None, device: str = "cpu",
                 run_memo: dict | None = None, hashes: dict[int, str] | None = None):
        self.run, self.step, self.model, self.device = run, step, model, device
        self.task = run.task
        self._memo: dict[str, Any] = {}
        self._run_memo = run_memo if run_memo is not None else {}
        self._hashes = hashes

    def checkpoint_hash(self, step: int) -> str:
        """sha256 of checkpoint `step`'s file (the analysis cache's hash of it)."""
        if self._hashes is not None and step in self._hashes:
            return self._hashes[step]
        return hashlib.sha256(self.run.checkpoint_path(step).read_bytes()).hexdigest()

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def run_memo(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._run_memo:
            self._run_memo[key] = fn()
        return self._run_memo[key]

    def reference(self, step: int) -> torch.nn.Module:
        if step == self.step:
            return self.model
        return self.run_memo(f"model@{step}", lambda: self.run.model(step, device=self.device))

    @property
    def first(self) -> torch.nn.Module:
        return self.reference(self.run.steps[0])

    @property
    def final(self) -> torch.nn.Module:
        return self.reference(self.run.steps[-1])

    def logits(self, inputs: str = "all") -> torch.Tensor:
        """The model's output on `task.<inputs>_inputs` ("all", "train" or "test"), float64,
        computed once per checkpoint."""
        def compute():
            with torch.no_grad():
                x = getattr(self.task, f"{inputs}_inputs").to(self.device)
                return self.model(x).to(torch.float64).cpu()
        return self.memo(f"logits:{inputs}", compute)


# ---------------------------------------------------------------- registry

_BUILTINS: dict[str, type[Probe]] = {}
_ALIASES: dict[str, str] = {}   # another name -> the built-in probe's name


def register_probe(cls: type[Probe]) -> type[Probe]:
    """Class decorator for built-in probes; refuses a second probe with the same name."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no `name`")
    if cls.name in _BUILTINS:
        raise ValueError(f"probe name {cls.name!r} is defined twice: {_where(_BUILTINS[cls.name])} "
                         f"and {_where(cls)}")
    _BUILTINS[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def canonical_name(name: str) -> str:
    """A built-in probe's name for one of its aliases (`lu` -> `landscape`); other names as given."""
    _load_builtins()
    return _ALIASES.get(name, name)


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_builtins() -> None:
    """Import every module of this package: their @register_probe decorators fill the registry,
    so a new built-in probe is one new file here, with no list to update."""
    import importlib
    import pkgutil

    import grokscope.probes as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base":
            importlib.import_module(f"grokscope.probes.{module.name}")


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise UsageError(f"probe name {ep.name!r} is defined twice by installed packages: "
                             f"{found[ep.name].value} and {ep.value}")
        found[ep.name] = ep
    return found


def available_probes() -> list[tuple[str, str, str]]:
    """(name, description, origin) of every built-in and entry-point probe; the description ends
    with what the probe needs of a model (NEEDS), which decides whether it runs on a user's model."""
    _load_builtins()
    rows = [(n, c.description + needs_text(c), "built-in") for n, c in sorted(_BUILTINS.items())]
    for name, ep in sorted(_entry_points().items()):
        if name in _BUILTINS:
            rows.append((name, f"(shadowed by the built-in probe of this name) {ep.value}", "entry point"))
            continue
        try:
            desc = ep.load().description
        except Exception as e:  # a broken plug-in must not break the listing
            desc = f"(failed to load: {e})"
        rows.append((name, desc, f"entry point {ep.value}"))
    return rows


def _check_class(obj: Any, ref: str) -> type[Probe]:
    if not (isinstance(obj, type) and issubclass(obj, Probe)):
        raise UsageError(f"{ref} is not a grokscope.Probe subclass")
    if not obj.name:
        raise UsageError(f"{ref} has no `name`; set the class attribute name = \"...\"")
    return obj


def _load_ref(ref: str) -> type[Probe]:
    return _check_class(load_object(ref, "probe"), ref)


def resolve_probe(ref: str) -> tuple[type[Probe], str]:
    """A probe class from a name or a `module:Class` / `file.py:Class` reference, and its origin."""
    _load_builtins()
    if ":" in ref:
        return _load_ref(ref), ref
    if ref in _BUILTINS or ref in _ALIASES:
        return _BUILTINS[_ALIASES.get(ref, ref)], "built-in"
    eps = _entry_points()
    if ref in eps:
        try:
            cls = eps[ref].load()
        except Exception as e:
            raise UsageError(f"probe {ref!r} from entry point {eps[ref].value} failed to load: {e}") from None
        return _check_class(cls, eps[ref].value), f"entry point {eps[ref].value}"
    known = sorted(set(_BUILTINS) | set(eps))
    raise UsageError(f"unknown probe {ref!r}; known probes: {', '.join(known)} "
                     "(or pass module:Class or path/to/file.py:Class)")

"""Run configuration: frozen dataclasses, TOML presets, `--set a.b=c` overrides, JSON round-trip.

A `RunConfig` is the whole recipe of a run. It is never mutated: overrides return a new config
(`dataclasses.replace`). Presets live as TOML files in `grokscope/presets/`.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

from grokscope.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class TaskConfig:
    name: str = "modular"          # modular, permutation (S_n), polynomial (Kumar), teacher_student, mnist,
                                   # toy_add, toy_permutation (Liu et al. 2022)
    op: str = "add"                # add, sub, mul, div, x2y2, x2xyy2, x3xy (modular)
    p: int = 113                   # modulus
    n: int = 3                     # permutation group S_n size (task "permutation")
    frac_train: float = 0.3
    split_seed: int | None = None  # None: use train.seed (Nanda et al. use one seed for both)
    # polynomial regression (Kumar et al. 2024): x ~ N(0, I/D), y = (beta.x)^2 / 2
    d_input: int = 100             # D
    n_train: int = 550             # P
    n_test: int = 1000
    # teacher-student (Omnigrok): inputs N(0, I_{d_input}), labels from a random tanh MLP
    teacher_hidden: tuple[int, ...] = (100, 100)
    d_output: int = 5
    # images (Omnigrok's MNIST): a folder with the official gzipped IDX files
    data_dir: str = ""
    # Liu et al. 2022 toy tasks: fixed random N(0, 1) target vector per class (train.loss=target_mse)
    d_target: int = 30
    draws: str = "train_add"       # toy: whose random draws to follow: "train_add" (their toy/train_add.py)
                                   #   or "notebook" (their phase-diagram notebooks; tasks/toy.py)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "transformer"      # transformer, mlp, committee, toy (Liu et al. 2022), lstm, custom
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act: str = "relu"              # relu, gelu, square
    layernorm: bool = False
    fast: bool = True              # compute only what the answer position needs
    # mlp model
    d_embed: int = 0               # 0: operands in a fixed encoding (model.encoding); >0: learned embeddings
    encoding: str = "one_hot"      # mlp with d_embed 0: one_hot, binary (the bits of each operand) or number
                                   #   (each operand as one value in [-1, 1]; Exploring Grokking's MLP)
    hidden: tuple[int, ...] = (512,)
    bias: bool = True
    init_scale: float = 1.0        # multiplies every initial weight
    init: str = "fan_in"           # mlp: "fan_in" N(0, 1/fan_in) weights; "torch" nn.Linear's U(+-1/sqrt(fan_in))
                                   #   weights and biases (Omnigrok); "unit" N(0, 1) weights and the output
                                   #   divided by the product of the layers' fan-ins (Kumar et al. App. 8.3)
    alpha: float = 1.0             # output scale (Kumar et al. 2024)
    centered: bool = False         # output alpha * (g(x; theta) - g(x; theta_0))
    alpha_lr: bool = False         # divide the learning rate by alpha^2
    eps: float = 0.02              # committee: phi(h) = h + eps/2 h^2 (Kumar et al. 2024)
    compose: str = "sum"           # toy: decoder input E_a + E_b ("sum") or E_a @ E_b ("matmul", S3)
    embed_scale: float = 1.0       # toy: the embedding's initial scale (Liu et al.'s S3 notebook: 0.1)
    factory: str = ""              # custom: "module:function" or "path/file.py:function" returning the nn.Module
    hooks: str = ""                # custom: "embed=<module>,unembed=<module>,blocks.0.mlp.hook_post=<module>,..."


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adamw"            # adamw, adam, sgd
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    momentum: float = 0.0          # sgd only
    warmup_steps: int = 10         # linear warm-up: lr * min(step / warmup, 1)
    grokfast: str = "none"         # none, ema, ma (Lee et al. 2024)
    grokfast_alpha: float = 0.98   # EMA momentum
    grokfast_lamb: float = 2.0     # amplification of the slow gradient
    grokfast_window: int = 100     # MA window
    # token embedding (`embed.*`) in its own group (Liu et al. 2022: embedding lr 1e-3, decoder 1e-4)
    embed_lr: float | None = None  # None: the same as lr
    embed_weight_decay: float | None = None  # None: the same as weight_decay


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 40_000
    seed: int = 0
    batch_size: int = 0            # 0: full batch
    loss: str = "cross_entropy"    # cross_entropy, mse (to one-hot, mean), sse (summed over classes) or target_mse (Liu)
    loss_dtype: str = "float64"    # float32 or float64 (Nanda et al. use float64)
    log_every: int = 1             # metrics row every this many steps
    threads: int = 0               # torch threads; 0 leaves torch's default
    flush_denormals: bool = False  # CPU: denormal floats read as zero (faster late runs without weight decay; not bit-identical)
    stop_after: int = 0            # >0: stop this many steps after the run generalizes (0: run all steps)
    embed_l1: float = 0.0          # adds embed_l1 x mean |embed.W_E| to the training loss (Liu et al.'s S3: 1e-3)
    # Omnigrok (Liu, Michaud, Tegmark 2023): hold the global L2 norm of all parameters fixed
    fixed_norm: float | None = None  # None: off; else the target norm, a multiple of w0 (the norm at default init)
    fixed_norm_absolute: bool = False  # true: fixed_norm is the norm itself, not a multiple of w0


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 0                 # 0: auto, steps // 200 (dates a transition within 0.5%)
    dense_until: int = 100         # every step up to here (memorization happens early)
    log_points: int = 100          # log-spaced steps between dense_until and the end
    resume_seconds: float = 30.0   # write resume state at most this often (and on exit)


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    description: str = ""
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """The config a dict describes (a run.json's "config", a preset); legacy "unset" values
        of older versions (LEGACY_UNSET) read as None."""
        if not isinstance(data, dict):
            raise UsageError(f"a config must be a table of sections, got {data!r}")
        return _build(cls, _upgrade(data), "")

    @property
    def split_seed(self) -> int:
        return self.train.seed if self.task.split_seed is None else self.task.split_seed


# Values that meant "not set" before these keys became optional (run.json files of grokscope
# 0.1 hold them); read as None so that old run directories still load and compare equal.
LEGACY_UNSET = {("optim", "embed_lr"): lambda v: v == 0,
                ("optim", "embed_weight_decay"): lambda v: isinstance(v, (int, float)) and v < 0,
                ("train", "fixed_norm"): lambda v: v == 0}


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    for (section, key), unset in LEGACY_UNSET.items():
        values = data.get(section)
        if isinstance(values, dict) and key in values and not isinstance(values[key], str) \
                and values[key] is not None and unset(values[key]):
            data[section] = {**values, key: None}
    return data


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UsageError(f"config section {prefix.rstrip('.') or 'root'} must be a table, got {data!r}")
    hints = _hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = prefix + unknown[0]
        raise UsageError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys(cls, prefix))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def valid_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    out = []
    hints = _hints(cls)
    for f in fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += valid_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check (and, for strings from the command line, parse) a value against a type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], key)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{key} must be a list of {item.__name__}, got {value!r}")
        return tuple(_coerce(v, item, key) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UsageError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise UsageError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise UsageError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UsageError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"{key} must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module


def overrides_name(base: str, overrides) -> str:
    """A deterministic folder name: `base`, then each override as _<last key part><value>
    (`nanda`, ["train.steps=1000"] -> `nanda_steps1000`), in characters every file system takes."""
    parts = [base]
    for item in overrides:
        key, _, value = item.partition("=")
        parts.append(f"{key.strip().split('.')[-1]}{value.strip()}")
    return "".join(c if c.isalnum() or c in "-_.=" else "-" for c in "_".join(parts))


def with_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `section.key=value` strings, type-checked; returns a new config."""
    data = config.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects section.key=value, got {item!r}")
        if key not in valid_keys():
            raise UsageError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys())}")
        parts = key.split(".")
        target = data
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = value.strip()
    return RunConfig.from_dict(data)


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("grokscope.presets").iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name: str) -> RunConfig:
    names = preset_names()
    if name not in names:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(names)}")
    text = resources.files("grokscope.presets").joinpath(f"{name}.toml").read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        from grokscope.errors import CorruptFileError

        raise CorruptFileError(f"preset {name}.toml is not valid TOML ({e}); reinstall grokscope "
                               "or undo the edit") from None
    data.setdefault("name", name)
    return RunConfig.from_dict(data)

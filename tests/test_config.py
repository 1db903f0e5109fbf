import pytest

from grokscope.config import (
    RunConfig,
    load_preset,
    preset_names,
    valid_keys,
    with_overrides,
)
from grokscope.errors import UsageError

REQUIRED_KEYS = ["train.steps", "train.seed", "task.p", "task.frac_train", "task.op", "optim.lr",
                 "optim.weight_decay", "checkpoint.every"]


def test_interface_keys_exist():
    assert set(REQUIRED_KEYS) <= set(valid_keys())


@pytest.mark.parametrize("name", preset_names())
def test_presets_load_and_round_trip(name):
    config = load_preset(name)
    assert config.description
    assert RunConfig.from_dict(config.to_dict()) == config


def test_required_presets_present():
    assert {"nanda", "power", "mlp", "quickstart"} <= set(preset_names())


def test_nanda_preset_matches_paper():
    c = load_preset("nanda")
    assert (c.task.p, c.task.frac_train, c.task.op) == (113, 0.3, "add")
    assert (c.model.d_model, c.model.n_heads, c.model.d_head, c.model.d_mlp) == (128, 4, 32, 512)
    assert not c.model.layernorm and c.train.batch_size == 0 and c.train.loss_dtype == "float64"
    assert (c.optim.lr, c.optim.weight_decay, c.optim.beta2, c.optim.warmup_steps) == (1e-3, 1.0, 0.98, 10)


@pytest.mark.parametrize("item, key, expected", [
    ("train.steps=500", ("train", "steps"), 500),
    ("train.steps=1e4", ("train", "steps"), 10000),
    ("optim.lr=3e-4", ("optim", "lr"), 3e-4),
    ("task.frac_train=0.4", ("task", "frac_train"), 0.4),
    ("task.op=mul", ("task", "op"), "mul"),
    ("model.layernorm=true", ("model", "layernorm"), True),
    ("model.hidden=64,32", ("model", "hidden"), (64, 32)),
    ("task.split_seed=none", ("task", "split_seed"), None),
    ("task.split_seed=7", ("task", "split_seed"), 7),
])
def test_overrides_are_typed(item, key, expected):
    config = with_overrides(load_preset("nanda"), [item])
    assert getattr(getattr(config, key[0]), key[1]) == expected


def test_overrides_do_not_mutate_the_input():
    base = load_preset("nanda")
    with_overrides(base, ["train.steps=5"])
    assert base.train.steps == 40000


@pytest.mark.parametrize("item, message", [
    ("train.stepz=5", "valid keys: name, description, task.name"),
    ("train.steps=abc", "train.steps must be an integer"),
    ("train.steps=1.5", "train.steps must be an integer"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("model.layernorm=maybe", "must be true or false"),
    ("train.steps", "expects section.key=value"),
])
def test_bad_overrides_name_the_problem(item, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.")):
        with_overrides(load_preset("nanda"), [item])


def test_unknown_preset_lists_known():
    with pytest.raises(UsageError, match="known presets: .*nanda"):
        load_preset("nandaa")


def test_split_seed_defaults_to_train_seed():
    c = with_overrides(load_preset("nanda"), ["train.seed=3"])
    assert c.split_seed == 3
    assert with_overrides(c, ["task.split_seed=1"]).split_seed == 1

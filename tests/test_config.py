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


def test_run_json_of_version_0_1_with_sentinel_values_still_loads(tiny, tmp_path):
    """0.1 wrote "not set" as embed_lr = 0, embed_weight_decay = -1, fixed_norm = 0; they read as None."""
    import json

    from grokscope.store import load_run
    from grokscope.training import train

    config = tiny(train={"steps": 5})
    train(config, tmp_path / "r", progress=False)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["config"]["optim"]["embed_lr"] is None and info["config"]["train"]["fixed_norm"] is None
    info["config"]["optim"].update(embed_lr=0.0, embed_weight_decay=-1.0)
    info["config"]["train"]["fixed_norm"] = 0.0
    (tmp_path / "r" / "run.json").write_text(json.dumps(info))
    run = load_run(tmp_path / "r")
    assert run.config == config
    assert (run.config.optim.embed_lr, run.config.optim.embed_weight_decay, run.config.train.fixed_norm) == (None,) * 3
    with pytest.raises(UsageError, match="already holds this run"):  # the same run, not "a different run"
        train(config, tmp_path / "r", progress=False)


@pytest.mark.parametrize("key, value, message", [
    ("optim.embed_lr", "0", "optim.embed_lr must be > 0 \\(none: the same as optim.lr\\)"),
    ("optim.embed_weight_decay", "-1", "optim.embed_weight_decay must be >= 0"),
    ("train.fixed_norm", "0", "train.fixed_norm must be > 0 \\(none turns it off\\)"),
])
def test_the_old_sentinels_are_refused_with_the_new_spelling(tiny, tmp_path, key, value, message):
    from grokscope.training import train

    config = with_overrides(tiny(optim={"weight_decay": 0.0}), [f"{key}={value}"])
    with pytest.raises(UsageError, match=message):
        train(config, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    assert with_overrides(tiny(), [f"{key}=none"]) == tiny()

"""Stacked training (training.stacked) equals separate training and resumes bit for bit."""

import numpy as np
import pytest
import torch
from helpers import interrupt_stacked_at, kumar_config, tiny_config, toy

from grokscope.config import load_preset, with_overrides
from grokscope.files import read_json
from grokscope.store import format_metrics, load_run
from grokscope.training import TrainingInterrupted, train
from grokscope.training.stacked import StackedStepper, choose_vectorized, compatible_key, train_many


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _metrics(path):
    return np.array([list(r) for r in load_run(path).metrics.values()]).T


@pytest.mark.parametrize("update", ["fused", "stacked"])
def test_vectorized_equals_separate_training(tmp_path, float64, monkeypatch, update):
    """Both optimizer paths: torch's fused kernel per model, and the update over stacked tensors
    (used where no fused kernel applies)."""
    if update == "stacked":
        monkeypatch.setattr(StackedStepper, "_fused_calls", lambda self: None)
    configs = [toy(**{"optim.lr": lr, "optim.weight_decay": wd, "train.seed": s,
                                            "task.split_seed": s})
               for lr, wd, s in [(1e-4, 0.0, 1), (1e-3, 1.0, 2), (3e-3, 5.0, 3)]]
    configs = [with_overrides(c, ["train.loss_dtype=float64"]) for c in configs]
    assert len({compatible_key(c) for c in configs}) == 1
    train_many(configs, [tmp_path / f"v{i}" for i in range(3)])
    for i, c in enumerate(configs):
        train(c, tmp_path / f"p{i}", progress=False)
        a, b = _metrics(tmp_path / f"v{i}"), _metrics(tmp_path / f"p{i}")
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        ra, rb = load_run(tmp_path / f"v{i}"), load_run(tmp_path / f"p{i}")
        assert ra.steps == rb.steps
        for k, v in ra.state_dict(30).items():
            torch.testing.assert_close(v, rb.state_dict(30)[k], rtol=1e-9, atol=1e-12)
        assert read_json(tmp_path / f"v{i}" / "split.json") == read_json(tmp_path / f"p{i}" / "split.json")


@pytest.mark.parametrize("optim", ["adamw", "adam"])
def test_vectorized_transformer_and_adam(tmp_path, float64, optim):
    configs = [tiny_config(optim={"name": optim, "lr": lr, "weight_decay": wd, "warmup_steps": 5},
                           train={"steps": 12, "seed": s, "loss_dtype": "float64"})
               for lr, wd, s in [(1e-2, 1.0, 0), (3e-3, 0.1, 1)]]
    train_many(configs, [tmp_path / "v0", tmp_path / "v1"])
    for i, c in enumerate(configs):
        train(c, tmp_path / f"p{i}", progress=False)
        np.testing.assert_allclose(_metrics(tmp_path / f"v{i}"), _metrics(tmp_path / f"p{i}"),
                                   rtol=1e-8, atol=1e-10)


def test_vectorized_interrupt_resumes_bit_identically(tmp_path, monkeypatch):
    configs = [toy(40, **{"optim.lr": lr}) for lr in (1e-4, 1e-3)]
    train_many(configs, [tmp_path / "a0", tmp_path / "a1"])
    undo = interrupt_stacked_at(monkeypatch, 17)
    with pytest.raises(TrainingInterrupted):
        train_many(configs, [tmp_path / "b0", tmp_path / "b1"])
    assert read_json(tmp_path / "b0" / "run.json")["status"] == "interrupted"
    undo()
    train_many(configs, [tmp_path / "b0", tmp_path / "b1"])  # continues stacked
    for i in range(2):
        assert (tmp_path / f"a{i}" / "metrics.csv").read_bytes() == (tmp_path / f"b{i}" / "metrics.csv").read_bytes()
        for f in (tmp_path / f"a{i}" / "checkpoints").iterdir():
            assert f.read_bytes() == (tmp_path / f"b{i}" / "checkpoints" / f.name).read_bytes()


def test_plain_trainer_finishes_a_vectorized_run(tmp_path, monkeypatch):
    config = toy(30)
    undo = interrupt_stacked_at(monkeypatch, 12)
    with pytest.raises(TrainingInterrupted):
        train_many([config, toy(30, **{"optim.lr": 1e-3})], [tmp_path / "v", tmp_path / "w"])
    undo()
    train(config, tmp_path / "v", resume=True, progress=False)
    train(config, tmp_path / "p", progress=False)
    np.testing.assert_allclose(_metrics(tmp_path / "v"), _metrics(tmp_path / "p"), rtol=1e-5, atol=1e-6)


def test_auto_choice():
    small = [toy(10, **{"optim.lr": lr}) for lr in (1e-4, 1e-3)]
    assert choose_vectorized(small)
    assert not choose_vectorized(small[:1])
    assert not choose_vectorized([small[0], toy(10, **{"model.hidden": "(100, 100)"})])
    big = [with_overrides(load_preset("nanda"), [f"optim.lr={lr}"]) for lr in (1e-3, 3e-3)]
    assert not choose_vectorized(big)  # 15 GFLOP a step: arithmetic dominates
    assert compatible_key(with_overrides(small[0], ["optim.grokfast=ema"])) is None


# ------------------------------------------------------------------ sweeps


def test_a_group_killed_while_flushing_its_runs_resumes_bit_identically(tmp_path, monkeypatch):
    """A group writes its runs' resume states one by one; killed between two, its runs stand at
    different steps. Each keeps its previous state, so resuming brings them back to one step."""
    from grokscope.training.state import RunState

    configs = [toy(60, **{"optim.lr": lr}) for lr in (1e-4, 1e-3)]
    train_many(configs, [tmp_path / "ref0", tmp_path / "ref1"])

    class Killed(BaseException):
        pass

    real, flushed = RunState.flush, []

    def dying(self):
        if len(flushed) >= 3 and self.writer.path.name == "b1" and self.step > flushed[-1][1] - 1:
            raise Killed
        real(self)
        flushed.append((self.writer.path.name, self.step))

    monkeypatch.setattr(RunState, "flush", dying)
    with pytest.raises(Killed):
        train_many(configs, [tmp_path / "b0", tmp_path / "b1"])
    monkeypatch.setattr(RunState, "flush", real)
    steps = {name: step for name, step in flushed}
    assert steps["b0"] > steps["b1"]                      # the two runs stopped at different steps
    train_many(configs, [tmp_path / "b0", tmp_path / "b1"])
    for i in range(2):
        ref, got = tmp_path / f"ref{i}", tmp_path / f"b{i}"
        assert {p.relative_to(ref): p.read_bytes() for p in ref.rglob("*") if p.is_file() and p.name != "run.json"} == \
            {p.relative_to(got): p.read_bytes() for p in got.rglob("*") if p.is_file() and p.name != "run.json"}


def test_results_do_not_depend_on_the_grouping(tmp_path, monkeypatch):
    """A sweep cuts its runs into groups by size (stacked.max_group_size): four runs trained as one
    group and as two groups of two end bit for bit the same (float32, the trainer's default)."""
    configs = [toy(40, **{"optim.lr": lr, "optim.weight_decay": wd, "name": f"r{i}"})
               for i, (lr, wd) in enumerate([(1e-4, 0.0), (1e-3, 1.0), (3e-3, 5.0), (1e-2, 2.0)])]
    train_many(configs, [tmp_path / "one" / c.name for c in configs])
    for part in (configs[:2], configs[2:]):
        train_many(part, [tmp_path / "two" / c.name for c in part])
    for c in configs:
        one, two = tmp_path / "one" / c.name, tmp_path / "two" / c.name
        assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
        for f in (one / "checkpoints").iterdir():
            assert f.read_bytes() == (two / "checkpoints" / f.name).read_bytes()


def test_max_group_size_keeps_a_group_in_the_cache():
    from grokscope.training.stacked import GROUP_BYTES, max_group_size

    toy_config = load_preset("liu-toy")  # 46,640 float32 parameters: 746 KB with gradients and moments
    assert max_group_size(toy_config) == GROUP_BYTES // (4 * 4 * 46_640)
    assert max_group_size(load_preset("nanda")) == GROUP_BYTES // (4 * 4 * 226_688)  # 13
    big = with_overrides(toy_config, ["model.hidden=(2000, 2000)"])  # 4M parameters: 65 MB a model
    assert max_group_size(big) == 2  # never below two


def test_on_a_gpu_a_group_is_sized_by_its_free_memory(monkeypatch):
    """The toy phase diagram (176 runs) fits one group on a GPU with 4 GB free; the CPU's cache
    limit stays 48 MB whatever the GPU has."""
    from grokscope.training import stacked

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * 2**30, 8 * 2**30))
    assert stacked.group_bytes("cpu") == stacked.GROUP_BYTES
    assert stacked.group_bytes("cuda") == stacked.group_bytes("cuda:0") == 2**30
    toy_config = load_preset("liu-toy")
    assert stacked.max_group_size(toy_config, "cuda") == 2**30 // (4 * 4 * 46_640) >= 176
    assert stacked.max_group_size(toy_config, "cpu") < 176
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 8 * 2**30))
    assert stacked.group_bytes("cuda") == stacked.GROUP_BYTES  # a nearly full GPU: never below the CPU's


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_group_size_on_this_gpu():
    from grokscope.training import stacked

    free, _ = torch.cuda.mem_get_info()
    assert stacked.group_bytes("cuda") == max(stacked.GROUP_BYTES, int(stacked.GPU_MEMORY_SHARE * free))


STACKABLE = {  # one config per model StackedStepper stacks (registered stackable)
    "toy": lambda: toy(),
    "mlp": lambda: tiny_config(model={"name": "mlp", "hidden": (16, 12), "d_embed": 4}),
    "transformer": lambda: tiny_config(),
    "committee": lambda: kumar_config(),
}


@pytest.mark.parametrize("model", sorted(STACKABLE))
def test_the_traced_loss_is_vmap_bit_for_bit(tmp_path, model):
    """StackedStepper replays the vmapped loss as a traced graph (trace): for every model it
    stacks, the graph is made and used for the training and the test inputs, and losses,
    outputs and gradients equal the vmap path's in every bit (an independent stepper that keeps
    vmap, several steps in, so the weights are no longer the initial ones)."""
    base = STACKABLE[model]()
    configs = [with_overrides(base, [f"optim.lr={base.optim.lr * f}", f"name=r{i}"]) for i, f in enumerate((1, 0.5))]
    traced = StackedStepper(configs, [tmp_path / "t" / c.name for c in configs], "cpu")
    plain = StackedStepper(configs, [tmp_path / "v" / c.name for c in configs], "cpu")
    plain.trace = lambda x, y: None  # vmap
    for st in (traced, plain):
        for _ in range(3):
            st.forward()
            st.update(st.config.optim.lr)
        st.forward()
        st.log(st.config.optim.lr)
    assert len(traced.graphs) == 2 and None not in traced.graphs.values()  # train and test inputs
    assert set(plain.graphs.values()) == {None}
    for a, b in [(traced.loss, plain.loss), (traced.out, plain.out), *zip(traced.grads.values(), plain.grads.values())]:
        assert a.dtype == b.dtype and torch.equal(a, b)
    for a, b in zip(traced.runs, plain.runs):  # the test-set rows (NaN accuracy for a regression)
        assert format_metrics(a.writer.rows) == format_metrics(b.writer.rows)


def test_a_loss_that_changes_between_calls_keeps_vmap(tmp_path):
    """What the graph cannot replay (a value baked in at tracing, as a branch on data or a
    random draw would be) shows as a difference in trace's one check, and vmap is kept."""
    configs = [toy(**{"name": f"r{i}", "optim.lr": lr}) for i, lr in enumerate((1e-3, 2e-3))]
    st = StackedStepper(configs, [tmp_path / c.name for c in configs], "cpu")
    vmapped, calls = st.loss_fn, []

    def changing(*args):
        calls.append(1)
        loss, out = vmapped(*args)
        return loss * len(calls), out

    st.loss_fn = changing
    st.forward()
    assert list(st.graphs.values()) == [None] and len(calls) == 3  # traced, checked, then used


def test_bitwise_equal():
    from grokscope.training.stacked import bitwise_equal

    nan = torch.tensor([float("nan"), 1.0])
    assert bitwise_equal(nan, nan.clone()) and not torch.equal(nan, nan.clone())
    assert not bitwise_equal(torch.tensor([0.0]), torch.tensor([-0.0]))
    assert not bitwise_equal(torch.ones(2), torch.ones(2, dtype=torch.float64))
    assert not bitwise_equal(torch.ones(2), torch.ones(1, 2))
    assert bitwise_equal(torch.arange(3), torch.arange(3)) and not bitwise_equal(torch.arange(3), torch.arange(1, 4))


def test_the_s3_notebook_settings_train_the_same_stacked_and_alone(tmp_path, float64):
    """Liu et al.'s S3 phase-diagram settings (notebook draws, embedding scale 0.1, the L1 term on
    the embedding) in both trainers; the L1 term is in the logged training loss."""
    base = with_overrides(load_preset("liu-s3"), [
        "train.steps=20", "checkpoint.every=10", "checkpoint.dense_until=2", "checkpoint.log_points=3",
        "task.draws=notebook", "model.embed_scale=0.1", "train.embed_l1=1e-3", "train.loss_dtype=float64",
        "task.split_seed=0", "train.seed=0"])
    configs = [with_overrides(base, [f"optim.weight_decay={wd}", f"optim.lr={lr}"]) for lr, wd in [(1e-3, 0), (1e-2, 5)]]
    train_many(configs, [tmp_path / "v0", tmp_path / "v1"])
    for i, c in enumerate(configs):
        train(c, tmp_path / f"p{i}", progress=False)
        np.testing.assert_allclose(_metrics(tmp_path / f"v{i}"), _metrics(tmp_path / f"p{i}"), rtol=1e-9, atol=1e-12)
    without = with_overrides(configs[0], ["train.embed_l1=0"])
    train(without, tmp_path / "n", progress=False)
    run, bare = load_run(tmp_path / "p0"), load_run(tmp_path / "n")
    W = run.state_dict(0)["embed.W_E"]
    assert float(run.metrics["train_loss"][0] - bare.metrics["train_loss"][0]) == pytest.approx(
        1e-3 * float(W.abs().mean()), rel=1e-9)


def test_train_seconds_count_every_resumed_segment(tmp_path, monkeypatch):
    """run.json's train_seconds is the whole run's: an interrupted stacked group records its time
    so far with each resume state, and the resumed run adds its own segment to it."""
    import json

    configs = [toy(steps=60, **{"optim.lr": lr}) for lr in (1e-3, 3e-3)]
    outs = [tmp_path / "a", tmp_path / "b"]
    undo = interrupt_stacked_at(monkeypatch, 40)
    with pytest.raises(TrainingInterrupted):
        train_many(configs, outs)
    undo()
    first = json.loads((outs[0] / "run.json").read_text())["train_seconds"]
    assert first > 0
    train_many(configs, outs)
    info = json.loads((outs[0] / "run.json").read_text())
    assert info["status"] == "complete" and info["train_seconds"] > first


def test_the_stackable_models_are_the_registered_ones():
    from grokscope.models import model_kinds

    assert {n for n, k in model_kinds().items() if k.stackable} == set(STACKABLE)

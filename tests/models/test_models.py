import pytest
import torch
from helpers import kumar_config, tiny_config
from transformer_lens import ActivationCache

from grokscope.config import load_preset
from grokscope.errors import UsageError
from grokscope.models import build_model
from grokscope.tasks import build_task
from grokscope.training import train


def test_committee_output_and_centering():
    config = kumar_config("model.centered=false", "model.alpha=2")
    task = build_task(config)
    torch.manual_seed(0)
    model = build_model(config, task).double()
    x = task.train_inputs.double()
    W = model.blocks[0].mlp.W_in
    h = x @ W
    expected = 2.0 / 16 * (h + 0.5 * 0.02 * h ** 2).sum(1)
    torch.testing.assert_close(model(x), expected)
    centered = build_model(kumar_config(), task)
    assert centered(task.train_inputs).abs().max() == 0  # f - f_0 starts at zero


TRANSFORMER_HOOKS = [
    "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q",
    "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_attn_scores",
    "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.0.hook_attn_out",
    "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post",
    "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post",
]


def _model(config, dtype=torch.float64):
    task = build_task(config)
    torch.manual_seed(0)
    return build_model(config, task).to(dtype), task


def test_transformer_hooks_and_cache(tiny):
    model, task = _model(tiny())
    x = task.train_inputs[:7]
    logits, cache = model.run_with_cache(x)
    assert logits.shape == (7, task.n_classes)
    assert set(TRANSFORMER_HOOKS) <= set(cache.keys())
    cache = ActivationCache(cache, model)
    assert cache["blocks.0.attn.hook_pattern"].shape == (7, 2, 3, 3)
    assert cache["blocks.0.mlp.hook_post"].shape == (7, 3, 32)
    # the cache is the real computation: unembedding the final residual gives the logits
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"][:, -1] @ model.unembed.W_U, logits)
    # causal: the first position attends only to itself
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"][:, :, 0, 0], torch.ones(7, 2, dtype=torch.float64))


def test_state_dict_names_follow_transformer_lens(tiny):
    model, task = _model(tiny())
    sd = model.state_dict()
    assert sd["embed.W_E"].shape == (14, 16) and sd["unembed.W_U"].shape == (16, 13)
    assert sd["blocks.0.attn.W_Q"].shape == (2, 16, 8) and sd["blocks.0.attn.W_O"].shape == (2, 8, 16)
    assert "blocks.0.attn.mask" not in sd  # masks are non-persistent buffers


@pytest.mark.parametrize("model_kw", [
    {},                                          # one layer, no LayerNorm: the table path
    {"n_layers": 2},
    {"layernorm": True},
    {"n_layers": 2, "layernorm": True, "act": "gelu"},
])
def test_fast_path_equals_plain(tiny, model_kw):
    model, task = _model(tiny(model=model_kw))
    # trained-looking weights: random but large, so every term matters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    x = task.all_inputs
    fast, plain = model.forward_fast(x), model.forward_plain(x)
    assert fast.shape == plain.shape == (x.shape[0], task.n_classes)
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    # gradients agree too
    g_fast = torch.autograd.grad(fast.square().sum(), list(model.parameters()))
    g_plain = torch.autograd.grad(model.forward_plain(x).square().sum(), list(model.parameters()))
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("model_kw", [{}, {"n_layers": 2}])
def test_answer_neurons_are_the_hooked_activations(tiny, model_kw):
    """`answer_neurons` (what fourier's neuron columns read) equals the hook at the answer
    position where the table path applies, and says None where it does not."""
    from grokscope.models.weight_views import answer_neuron_acts

    model, task = _model(tiny(model=model_kw))
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    x = task.all_inputs
    _, cache = model.run_with_cache(x, names_filter=lambda n: n.endswith("mlp.hook_post"))
    hooked = cache[f"blocks.{len(model.blocks) - 1}.mlp.hook_post"][:, -1]
    fast = model.answer_neurons(x)
    if model_kw:
        assert fast is None
    else:
        torch.testing.assert_close(fast, hooked, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(answer_neuron_acts(model, x), hooked, rtol=1e-12, atol=1e-12)


def test_fast_path_is_taken_without_hooks_only(tiny, monkeypatch):
    model, task = _model(tiny())
    calls = []
    monkeypatch.setattr(model, "forward_plain", lambda t: calls.append("plain") or t)
    monkeypatch.setattr(model, "forward_fast", lambda t: calls.append("fast") or t)
    model(task.train_inputs[:2])
    model.run_with_cache(task.train_inputs[:2])
    assert calls == ["fast", "plain"]


def test_mlp_hooks_and_shapes(tiny):
    model, task = _model(tiny(model={"name": "mlp", "hidden": (24, 20), "d_embed": 5}))
    logits, cache = model.run_with_cache(task.train_inputs[:4])
    assert logits.shape == (4, 13)
    assert cache["hook_embed"].shape == (4, 10)
    assert cache["blocks.0.mlp.hook_post"].shape == (4, 24)
    assert cache["blocks.1.mlp.hook_post"].shape == (4, 20)


def test_mlp_one_hot_input(tiny):
    model, task = _model(tiny(model={"name": "mlp", "hidden": (8,), "act": "square", "bias": False}))
    x = task.train_inputs[:5]
    a, b = x[:, 0], x[:, 1]
    W = model.blocks[0].mlp.W_in
    expected = ((W[a] + W[13 + b]) ** 2) @ model.unembed.W_U
    torch.testing.assert_close(model(x), expected)


def test_mlp_centered_alpha(tiny):
    model, task = _model(tiny(model={"name": "mlp", "centered": True, "alpha": 4.0}))
    x = task.all_inputs
    g0 = model.g(x).detach()
    assert model(x).abs().max() == 0  # f(x; theta_0) = 0 for the centered predictor
    with torch.no_grad():
        model.unembed.W_U.add_(0.1)
    torch.testing.assert_close(model(x), 4.0 * (model.g(x) - g0))
    assert any(k.startswith("init_") for k in model.state_dict())  # theta_0 travels with checkpoints


def test_init_scale_scales_weights(tiny):
    a, _ = _model(tiny())
    b, _ = _model(tiny(model={"init_scale": 3.0}))
    torch.testing.assert_close(b.embed.W_E, 3.0 * a.embed.W_E)


# ------------------------------------------------------------------ Liu et al.'s toy model, LSTM


def test_toy_model_initialises_as_the_authors_code():
    """Same torch seed, same draws: embedding torch.rand(p, d) - 1/2, then nn.Linear layers."""
    from torch import nn

    from grokscope.models import build_model
    from grokscope.tasks import build_task

    config = load_preset("liu-toy")
    task = build_task(config)
    torch.manual_seed(58)
    model = build_model(config, task)
    torch.manual_seed(58)
    reprs = torch.rand(10, 1) - 0.5
    l1, l2, l3 = nn.Linear(1, 200), nn.Linear(200, 200), nn.Linear(200, 30)
    x = task.all_inputs
    ref = l3(torch.tanh(l2(torch.tanh(l1(reprs[x[:, 0]] + reprs[x[:, 1]])))))
    torch.testing.assert_close(model.embed.W_E.detach(), reprs)
    torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-6)
    assert task.targets.shape == (19, 30) and len(task.train_indices) == 45


def test_toy_matmul_composition_and_hooks():
    from grokscope.models.toy import Toy

    model = Toy(6, 6, d_embed=9, hidden=(8,), compose="matmul")
    x = torch.tensor([[1, 2], [5, 0]])
    out, cache = model.run_with_cache(x)
    E = model.embed.W_E.detach().reshape(6, 3, 3)
    torch.testing.assert_close(cache["hook_combined"], torch.stack([E[1] @ E[2], E[5] @ E[0]]).flatten(1))
    assert cache["hook_embed"].shape == (2, 2, 9) and out.shape == (2, 6)
    with pytest.raises(UsageError):
        Toy(6, 6, d_embed=8, compose="matmul")


def test_lstm_model_trains_and_exposes_hooks(tmp_path):

    config = tiny_config(model={"name": "lstm", "d_model": 12, "d_embed": 0}, train={"steps": 30})
    run = train(config, tmp_path / "lstm", progress=False)
    m = run.metrics
    assert m["train_loss"][-1] < m["train_loss"][0]
    model = run.model(run.steps[-1])
    logits, cache = model.run_with_cache(run.task.train_inputs[:5])
    assert logits.shape == (5, 13)
    assert cache["hook_hidden"].shape == (5, 3, 12) and cache["hook_embed"].shape == (5, 3, 12)
    torch.testing.assert_close(model.unembed(cache["hook_hidden"][:, -1]), logits)


def test_the_mlp_input_encodings():
    """One-hot, binary digits (least significant first) and one number per operand in [-1, 1]; the
    layerwise NTK (which reads the fixed encoding) equals the autograd one for each."""
    from grokscope.measures.ntk import empirical_ntk
    from grokscope.models.mlp import MLP

    tokens = torch.tensor([[0, 5, 97], [96, 1, 97]])
    expect = {"one_hot": 2 * 97, "binary": 2 * 7, "number": 2}
    for encoding, width in expect.items():
        torch.manual_seed(0)
        model = MLP(98, 97, 3, hidden=(8,), encoding=encoding)
        x = model.one_hot(tokens[:, :2])
        assert x.shape == (2, width)
        if encoding == "binary":
            assert x[0].tolist() == [0] * 7 + [1, 0, 1, 0, 0, 0, 0]
            assert x[1, :7].tolist() == [0, 0, 0, 0, 0, 1, 1]   # 96 = 32 + 64
        if encoding == "number":
            torch.testing.assert_close(x, torch.tensor([[-1.0, 2 * 5 / 96 - 1], [1.0, 2 / 96 - 1]]))
        fast = empirical_ntk(model, tokens, method="layerwise")
        slow = empirical_ntk(model, tokens, method="jacobian")
        torch.testing.assert_close(fast, slow)


def test_token_embedding_of_an_encoded_mlp_is_what_its_first_layer_makes_of_each_token():
    from grokscope.models.mlp import MLP
    from grokscope.models.weight_views import token_embedding

    for encoding in ("one_hot", "binary", "number"):
        torch.manual_seed(0)
        model = MLP(24, 23, 3, hidden=(8,), encoding=encoding, bias=False)
        E = token_embedding(model, 23)                     # (23, 2 * 8): position 0's map, then position 1's
        a, b = 5, 17
        x = model.one_hot(torch.tensor([[a, b]]))
        pre = x @ model.blocks[0].mlp.W_in.detach()        # the first layer's pre-activation of (a, b)
        torch.testing.assert_close(pre[0], E[a, :8] + E[b, 8:])

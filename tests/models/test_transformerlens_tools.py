"""TransformerLens's own tools on grokscope's transformer: `cfg`, `ActivationCache`, activation
patching and the residual-stream decompositions, each against a hand-written hook computation."""

import pytest
import torch
import transformer_lens.patching as patching
from transformer_lens import ActivationCache

import grokscope
from grokscope.models.transformer import Transformer
from grokscope.probes.patching import corrupted_pairs, quiet_patching


@pytest.fixture(scope="module", params=[(1, False), (2, True)], ids=["1-layer", "2-layer-LN"])
def setup(request):
    n_layers, layernorm = request.param
    task = grokscope.build_task(grokscope.RunConfig.from_dict({"task": {"p": 13, "frac_train": 0.5}}))
    torch.manual_seed(0)
    model = Transformer(task.vocab_size, task.n_classes, task.n_ctx, n_layers=n_layers, d_model=24, n_heads=3,
                        d_head=8, d_mlp=32, layernorm=layernorm).double().eval()
    clean, corrupt, ans, wrong = corrupted_pairs(task, 16, 0)
    return model, clean, corrupt, ans, wrong


def hand_cache(model, x):
    """Every hook point's activation through plain forward hooks on the HookPoints."""
    seen, handles = {}, []
    for name, hp in model.hook_dict.items():
        handles.append(hp.register_forward_hook(lambda m, a, out, name=name: seen.__setitem__(name, out.detach())))
    logits = model(x)
    for h in handles:
        h.remove()
    return logits, seen


def test_cfg_and_cache(setup):
    model, clean, *_ = setup
    assert model.cfg.n_layers == len(model.blocks) and model.cfg.n_heads == 3 and model.cfg.d_mlp == 32
    assert model.cfg.normalization_type == ("LN" if model.layernorm else None)
    logits, cache = model.run_with_cache(clean)
    assert isinstance(cache, ActivationCache)
    ref_logits, ref = hand_cache(model, clean)
    torch.testing.assert_close(logits, ref_logits)
    assert set(cache.keys()) == set(ref)
    for name in ref:
        torch.testing.assert_close(cache[name], ref[name])
    _, plain = model.run_with_cache(clean, return_cache_object=False)
    assert isinstance(plain, dict)
    assert model.to_tokens("3 5 =").tolist() == [[3, 5, 13]] and model.to_single_token("=") == 13


def test_residual_decompositions_add_up(setup):
    model, clean, _, ans, _ = setup
    logits, cache = model.run_with_cache(clean)
    last = f"blocks.{len(model.blocks) - 1}.hook_resid_post"
    parts, labels = cache.decompose_resid(return_labels=True)
    assert labels[:2] == ["embed", "pos_embed"] and len(labels) == 2 + 2 * len(model.blocks)
    biases = sum(b.mlp.b_out for b in model.blocks)
    torch.testing.assert_close(parts.sum(0) + biases, cache[last])
    accumulated = cache.accumulated_resid()
    torch.testing.assert_close(accumulated[-1], cache[last])
    torch.testing.assert_close(accumulated[0], cache["blocks.0.hook_resid_pre"])
    if not model.layernorm:   # logit attribution: the parts' logits (plus the biases') are the logit
        attrs = cache.logit_attrs(parts[:, :, -1], tokens=ans)
        bias_logit = biases @ model.W_U[:, ans]
        torch.testing.assert_close(attrs.sum(0) + bias_logit, logits[torch.arange(len(ans)), ans])


def test_activation_patching_equals_hand_written_hooks(setup):
    model, clean, corrupt, ans, wrong = setup
    rows = torch.arange(len(ans))

    def metric(logits):
        return (logits[rows, ans] - logits[rows, wrong]).mean()

    _, cache = model.run_with_cache(clean)
    with quiet_patching():
        resid = patching.get_act_patch_resid_pre(model, corrupt, cache, metric)
        heads = patching.get_act_patch_attn_head_out_all_pos(model, corrupt, cache, metric)
    assert resid.shape == (len(model.blocks), 3) and heads.shape == (len(model.blocks), 3)
    for layer in range(len(model.blocks)):
        name = f"blocks.{layer}.hook_resid_pre"
        for pos in range(3):
            def put(act, hook, pos=pos, name=name):
                act = act.clone()
                act[:, pos] = cache[name][:, pos]
                return act
            expected = metric(model.run_with_hooks(corrupt, fwd_hooks=[(name, put)]))
            torch.testing.assert_close(resid[layer, pos], expected.float(), atol=1e-6, rtol=1e-5)
        z = f"blocks.{layer}.attn.hook_z"
        for head in range(3):
            def put_head(act, hook, head=head, z=z):
                act = act.clone()
                act[:, :, head] = cache[z][:, :, head]
                return act
            expected = metric(model.run_with_hooks(corrupt, fwd_hooks=[(z, put_head)]))
            torch.testing.assert_close(heads[layer, head], expected.float(), atol=1e-6, rtol=1e-5)
    # the corrupted operand's residual stream before layer 0 carries the whole difference
    torch.testing.assert_close(resid[0, 1], metric(model(clean)).float(), atol=1e-6, rtol=1e-5)


def test_patching_probe_over_a_run(tiny_run, tmp_path):
    tables = grokscope.analyze(tiny_run, ["patching"], out=tmp_path / "an", count=4, progress=False, report=False)
    table = tables["patching"]
    assert set(table) >= {"logit_diff_clean", "logit_diff_corrupted", "recovered_L0H0", "recovered_L0H1",
                                  "recovered_L0_mlp", "recovered_L0_resid_b"}
    # in one layer, the second operand's position before the block holds the whole difference
    assert table["recovered_L0_resid_b"] == pytest.approx([1.0] * len(table["step"]), abs=1e-6)
    assert table["logit_diff_clean"][-1] > table["logit_diff_corrupted"][-1]

import pytest
from helpers import tiny_config

from grokscope.analysis import analyze
from grokscope.measures.ntk import empirical_ntk
from grokscope.measures.similarity import kernel_alignment
from grokscope.training import train


@pytest.fixture(scope="module", params=["transformer", "mlp"])
def run(request, tmp_path_factory):
    model = {} if request.param == "transformer" else {"name": "mlp", "hidden": (16,), "d_embed": 4}
    return train(tiny_config(model=model, train={"steps": 40}), tmp_path_factory.mktemp(request.param) / "r",
                 progress=False)


def test_ntk_and_cka_probes(run, tmp_path):
    tables = analyze(run, ["ntk_spectrum", "ntk_alignment", "cka"], out=tmp_path / "a", every=20,
                     params={"ntk_spectrum": {"n": 24, "k": 5}, "ntk_alignment": {"n": 16}}, progress=False)
    s, a, c = tables["ntk_spectrum"], tables["ntk_alignment"], tables["cka"]
    assert [f"ntk_top{i}" for i in range(1, 6)] + ["ntk_trace", "ntk_effective_rank"] == list(s)[1:]
    assert (s["ntk_top1"] >= s["ntk_top2"]).all() and (s["ntk_trace"] >= s["ntk_top1"]).all()
    for col in ("alignment_train", "alignment_test", "target_power_top1", "target_power_top10",
                "target_power_top100", "kernel_distance", "param_movement", "kernel_regression_test_loss"):
        assert col in a
    assert a["kernel_distance"][0] == pytest.approx(0.0, abs=1e-9) and a["param_movement"][0] == 0.0
    assert a["param_movement"][-1] > 0 and a["kernel_distance"][-1] > 0
    assert (a["target_power_top1"] <= a["target_power_top10"]).all()
    assert a["target_power_top100"][0] == pytest.approx(1.0)  # 16 points: 100 eigenvectors span everything
    final_cols = [k for k in c if k.startswith("cka_final.")]
    assert final_cols and all(c[k][-1] == pytest.approx(1.0) for k in final_cols)
    assert all(c[k.replace("final", "first")][0] == pytest.approx(1.0) for k in final_cols)


def test_alignment_column_equals_the_pure_functions(run, tmp_path):
    tables = analyze(run, ["ntk_alignment"], out=tmp_path / "a", steps="40:40",
                     params={"ntk_alignment": {"n": 16, "kernel": "trace", "dtype": "float64"}},
                     progress=False, report=False)
    model, task = run.model(40), run.task
    K = empirical_ntk(model, task.train_inputs[:16], "trace")
    assert tables["ntk_alignment"]["alignment_train"][0] == pytest.approx(
        kernel_alignment(K, task.train_labels[:16], task.n_classes), rel=1e-9)

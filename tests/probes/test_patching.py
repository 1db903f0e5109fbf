"""patching: the clean and corrupted logit differences against a forward pass written here, and the
recovered fractions' two fixed points (patching the corrupted run's residual stream at the
answer position with the clean one's before the first layer recovers everything)."""

import math

import pytest
import torch

from grokscope.analysis import analyze
from grokscope.probes.patching import corrupted_pairs


def test_logit_differences_and_full_recovery_from_the_residual_stream(tiny_run, tmp_path):
    t = analyze(tiny_run, ["patching"], out=tmp_path / "pa", every=120, progress=False, report=False)["patching"]
    i = list(t["step"]).index(120)
    clean, corrupt, ans, wrong = corrupted_pairs(tiny_run.task, 64, 0)
    model = tiny_run.model(120)
    rows = torch.arange(len(ans))
    with torch.no_grad():
        ld = lambda logits: float((logits.double()[rows, ans] - logits.double()[rows, wrong]).mean())
        # (float32 logits: the probe reads them through run_with_cache, the same kernels up to rounding)
        assert t["logit_diff_clean"][i] == pytest.approx(ld(model(clean)), rel=1e-6)
        assert t["logit_diff_corrupted"][i] == pytest.approx(ld(model(corrupt)), rel=1e-6)
    # position 1 (the corrupted operand) before layer 0 carries all of the difference (to float32
    # rounding: the patched forward pass and the clean one may take different kernels)
    assert t["recovered_L0_resid_b"][i] == pytest.approx(1.0, abs=1e-6)
    heads = [k for k in t if k.startswith("recovered_L0H")]
    assert heads and all(math.isfinite(t[k][i]) for k in heads)

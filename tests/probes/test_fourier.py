"""fourier: the Gini coefficients and frequency norms of W_E in the Fourier basis, against numpy's
FFT and the Gini formula written here (Hurley & Rickard's, over the sorted magnitudes)."""

import numpy as np
import pytest

from grokscope.analysis import analyze


def gini(x):
    c = np.sort(np.abs(np.asarray(x, dtype=float)))
    n = len(c)
    k = np.arange(1, n + 1)
    return 1 - 2 * np.sum(c / c.sum() * (n - k + 0.5) / n)


def fft_rows(W):
    """The coefficients of the rows of W (p, d) in the orthonormal basis const, cos 1, sin 1, ...:
    from the real FFT, Re and -Im scaled by sqrt(2/p) (the constant by 1/sqrt(p))."""
    p = W.shape[0]
    F = np.fft.rfft(W, axis=0)
    rows = [F[0].real / np.sqrt(p)]
    for k in range(1, p // 2 + 1):
        rows.append(F[k].real * np.sqrt(2 / p))
        if 2 * k != p:
            rows.append(-F[k].imag * np.sqrt(2 / p))
    return np.stack(rows)


def test_gini_and_frequency_norms_match_an_fft(tiny_run, tmp_path):
    out = tmp_path / "f"
    tables = analyze(tiny_run, ["fourier"], out=out, every=60, progress=False, report=False)
    t, p = tables["fourier"], tiny_run.task.p
    arrays = np.load(out / "fourier.npz")
    for i, step in enumerate(t["step"]):
        W = tiny_run.state_dict(int(step))["embed.W_E"][:p].double().numpy()
        coef = fft_rows(W)
        assert t["gini_embed"][i] == pytest.approx(gini(np.linalg.norm(coef, axis=1)), abs=1e-12)
        F = np.fft.rfft(W, axis=0)
        norms = np.linalg.norm(F, axis=1) * np.sqrt(2 / p)
        norms[0] = np.linalg.norm(F[0]) / np.sqrt(p)
        np.testing.assert_allclose(arrays[f"embed_freq_norms/step_{int(step):08d}"], norms, rtol=1e-10)
        keys = [int(k) for k in str(t["key_frequencies"][i]).split()]
        energy = norms[1:] ** 2
        assert t["key_energy_share"][i] == pytest.approx(energy[[k - 1 for k in keys]].sum() / energy.sum(), rel=1e-10)

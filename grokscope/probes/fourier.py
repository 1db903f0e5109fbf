"""`fourier`: Fourier structure of the embedding and the neuron-to-logit map (Nanda et al. 2023,
sections 4-5), for models trained on Z_p tasks."""

from __future__ import annotations

import torch

from grokscope.measures.fourier import (
    fourier_basis,
    frequency_norms,
    gini,
    key_frequencies_from_norms,
    neuron_frequency_fractions,
)
from grokscope.models.weight_views import answer_neuron_acts, neuron_to_logit, token_embedding
from grokscope.probes.base import Probe, ProbeContext, ProbeResult, register_probe
from grokscope.specs import FigureSpec, Headline, Panel

KEY_SOURCES = ("embed", "neuron_logit")


def applies_to_modular(run) -> bool | str:
    if run.config.task.name != "modular":
        return f"needs a task over Z_p (task is {run.config.task.name!r})"
    return True


def in_fourier_basis(p: int, weights: torch.Tensor) -> torch.Tensor:
    """(p, ...) rows indexed by the residues -> their coefficients on `fourier_basis(p)`, float64,
    on the weights' device."""
    basis, _ = fourier_basis(p, device=weights.device)
    return basis @ weights.detach().to(torch.float64)


def embed_frequency_norms(model, p: int) -> torch.Tensor:
    return frequency_norms(in_fourier_basis(p, token_embedding(model, p)), p).cpu()


def neuron_logit_frequency_norms(model, p: int) -> torch.Tensor:
    return frequency_norms(in_fourier_basis(p, neuron_to_logit(model)[:p]), p).cpu()


def key_frequencies(ctx: ProbeContext, per_checkpoint: bool, source: str) -> list[int]:
    """Key frequencies from the final checkpoint (default, the paper's convention: the same
    frequencies at every step, so early curves are not noisy) or from this checkpoint."""
    p = ctx.task.p
    norms_of = embed_frequency_norms if source == "embed" else neuron_logit_frequency_norms
    if per_checkpoint:
        return key_frequencies_from_norms(norms_of(ctx.model, p))
    return ctx.run_memo(f"keys:{source}", lambda: key_frequencies_from_norms(norms_of(ctx.final, p)))


@register_probe
class FourierProbe(Probe):
    name = "fourier"
    needs = ("embeddings", "unembedding", "neurons")
    version = "2"
    description = "Fourier norms of W_E, key frequencies, Gini of W_E and W_L, single-frequency neurons"
    defaults = {"per_checkpoint_keys": False, "key_source": "embed", "neuron_threshold": 0.85}
    notes = ("Fourier basis over Z_p: const, then cos k, sin k for k = 1..p//2 (cos before sin), "
             "unit-norm rows. embed_k<k> combines cos k and sin k; embed_k0 is the constant.")

    def applies_to(self, run) -> bool | str:
        if self.params["key_source"] not in KEY_SOURCES:
            return f"key_source must be one of {', '.join(KEY_SOURCES)}"
        return applies_to_modular(run)

    def run_inputs(self, ctx: ProbeContext) -> list[int] | None:
        """The key frequencies every checkpoint is measured at, read from the final checkpoint."""
        return None if self.params["per_checkpoint_keys"] else key_frequencies(ctx, False, self.params["key_source"])

    def measure(self, ctx: ProbeContext) -> ProbeResult:
        p = ctx.task.p
        coef_embed = in_fourier_basis(p, token_embedding(ctx.model, p)).cpu()
        embed_norms = frequency_norms(coef_embed, p)
        coef_logit = in_fourier_basis(p, neuron_to_logit(ctx.model)[:p]).cpu()
        keys = key_frequencies(ctx, self.params["per_checkpoint_keys"], self.params["key_source"])
        energy = embed_norms[1:].pow(2)
        scalars: dict[str, float | str] = {
            "key_frequencies": " ".join(map(str, keys)),
            "n_key_frequencies": float(len(keys)),
            "gini_embed": gini(coef_embed.norm(dim=1)),
            "gini_neuron_logit": gini(coef_logit.norm(dim=1)),
            "key_energy_share": float(energy[[k - 1 for k in keys]].sum() / energy.sum()),
        }
        arrays = {"embed_freq_norms": embed_norms.numpy(),
                  "neuron_logit_freq_norms": frequency_norms(coef_logit, p).numpy()}
        n_total = ctx.task.all_inputs.shape[0]
        if n_total == p * p:  # neuron analysis needs the full (a, b) grid
            acts = answer_neuron_acts(ctx.model, ctx.task.all_inputs.to(ctx.device))
            fractions = neuron_frequency_fractions(acts.to(torch.float64).view(p, p, -1), p).cpu()
            best_frac, best_freq = fractions.max(0)
            alive = acts.abs().amax(0).cpu() > 0
            explained = (best_frac > self.params["neuron_threshold"]) & alive
            scalars["neuron_single_freq_share"] = float(explained.double().mean())
            on_key = torch.isin(best_freq, torch.tensor(keys))
            scalars["neuron_key_freq_share"] = float((explained & on_key).double().mean())
            scalars["neuron_best_on_key_share"] = float((on_key & alive).double().mean())
            arrays["neuron_best_freq"] = best_freq.numpy()
            arrays["neuron_best_frac"] = best_frac.numpy()
        for k, value in enumerate(embed_norms.tolist()):
            scalars[f"embed_k{k}"] = value
        return ProbeResult(scalars, arrays)

    quiet = ("embed_k",)

    def figures(self) -> list[FigureSpec]:
        return [FigureSpec(self.name, panels=(
            Panel(columns=("gini_embed", "gini_neuron_logit", "key_energy_share", "neuron_single_freq_share"),
                  labels=(("gini_embed", "Gini of W_E"), ("gini_neuron_logit", "Gini of W_L"),
                          ("key_energy_share", "key freqs' share of W_E"),
                          ("neuron_single_freq_share", "single-freq neurons")),
                  title="Fourier sparsity", logy=False),
            Panel(kind="heatmap", prefix="embed_k", exclude=("embed_k0",), title="W_E per Fourier frequency",
                  ylabel="frequency k", clabel="norm")))]

    def headlines(self) -> list[Headline]:
        return [Headline("gini_embed", "Gini of the Fourier norms of W_E"),
                Headline("key_frequencies", "Key frequencies", kind="last", only_if_generalized=True)]

"""`parallelogram`: representation quality of the token embedding (Liu et al. 2022)."""

from __future__ import annotations

from grokscope.measures.parallelogram import parallelogram_loss, parallelograms, predicted_accuracy, rqi
from grokscope.models.weight_views import token_embedding
from grokscope.probes.base import Probe, ProbeContext, register_probe
from grokscope.specs import FigureSpec, Panel


@register_probe
class ParallelogramProbe(Probe):
    name = "parallelogram"
    needs = ("embeddings",)
    version = "2"
    description = "RQI, effective parallelogram loss and predicted accuracy of the token embedding (Liu et al. 2022)"
    defaults = {"tol": 0.01}

    def applies_to(self, run) -> bool | str:
        t = run.config.task
        if t.name == "toy_add" or (t.name == "modular" and t.op == "add"):
            return True
        return f"parallelograms i + j = m + n need an addition task (task is {t.name} {t.op})"

    quiet = ("n_parallelograms",)

    def figures(self) -> list[FigureSpec]:
        """RQI over the steps beside accuracy (the run's own metrics), as in Liu et al.'s Fig. 5."""
        return [FigureSpec(self.name, panels=(
            Panel(columns=("rqi", "predicted_accuracy"),
                  labels=(("rqi", "RQI"), ("predicted_accuracy", "accuracy predicted from RQI")),
                  title="representation quality", logy=False),
            Panel(table="training", columns=("train_acc", "test_acc"),
                  labels=(("train_acc", "train accuracy"), ("test_acc", "test accuracy")),
                  title="accuracy", ylabel="accuracy", logy=False)))]

    def measure(self, ctx: ProbeContext) -> dict[str, float]:
        task = ctx.task
        p = task.p
        modulus = None if task.name == "toy_add" else p  # Liu et al.'s toy: the plain sum
        quads = ctx.run_memo("parallelograms", lambda: parallelograms(p, modulus=modulus))
        E = token_embedding(ctx.model, p)
        pairs = task.all_inputs[:, :2]
        tol = self.params["tol"]
        return {
            "rqi": rqi(E, quads, tol),
            "parallelogram_loss": parallelogram_loss(E, quads),
            "predicted_accuracy": predicted_accuracy(E, pairs[task.train_indices], pairs[task.test_indices],
                                                     modulus=modulus, tol=tol),
            "n_parallelograms": float(len(quads)),
        }

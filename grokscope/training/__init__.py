"""Training: one loop skeleton (`loop.run_loop`) whose only varying part is the update step
(`loop.PlainStepper` for one model, `stacked.StackedStepper` for a stacked group), optimizers and
Grokfast filters (`optim`), the checkpoint schedule (`schedule`) and the losses (`losses`).

Training never imports probes, analysis or reports: it writes a run directory (through
`store.RunWriter`) and nothing else.
"""

from grokscope.training.loop import TrainingDiverged, TrainingInterrupted, branch, ensure_trained, train

__all__ = ["TrainingDiverged", "TrainingInterrupted", "branch", "ensure_trained", "train", "train_many"]


def __getattr__(name: str):
    if name == "train_many":  # torch.func is imported only when stacking is used
        from grokscope.training.stacked import train_many

        return train_many
    raise AttributeError(f"module 'grokscope.training' has no attribute {name!r}")

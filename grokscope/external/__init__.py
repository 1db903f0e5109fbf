"""Runs made outside grokscope's trainer: `Recorder` for a user's own training loop
(`recorder.py`), and `grokscope import` for checkpoints trained elsewhere (`importers.py`). Both
write an ordinary run directory through `store.RunWriter`."""

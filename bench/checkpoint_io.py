"""Checkpoint writing as the trainers do it, against the previous version side by side:

    previous: safetensors.torch serializes, every file fsynced as it is written
    now:      safetensors.numpy serializes (the same bytes), the checkpoints fsynced in one pass
              before the next resume state (RunWriter.save_checkpoint(sync=False), sync_checkpoints)

    python bench/checkpoint_io.py [--files 400] [--presets liu-toy,nanda]

For each preset's model: milliseconds per checkpoint file (write, and the later fsync pass
included), best of 3 rounds of `--files` checkpoints into a fresh directory beside this
checkout (the disk the run directories would be on), the ratio, and whether both wrote the same
bytes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save as torch_save

from grokscope import load_preset
from grokscope.files import _canonical_header, atomic_write_bytes
from grokscope.models import build_model
from grokscope.store import RunWriter, checkpoint_name
from grokscope.tasks import build_task


def previous(directory: Path, step: int, state: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    data = _canonical_header(torch_save(tensors, metadata={"step": str(step), "format": "grokscope"}))
    atomic_write_bytes(directory / "checkpoints" / checkpoint_name(step), data)


def best_ms(write, files: int, root: Path) -> float:
    best = float("inf")
    for r in range(3):
        directory = root / f"round{r}"
        t0 = time.perf_counter()
        write(directory, files)
        best = min(best, (time.perf_counter() - t0) / files * 1e3)
        shutil.rmtree(directory)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--presets", default="liu-toy,nanda")
    args = ap.parse_args()
    print(f"checkpoint writing, ms per file (best of 3 x {args.files} files)")
    print(f"{'preset':10s} {'size':>9s} {'previous':>9s} {'now':>7s} {'ratio':>6s}  same bytes")
    for preset in args.presets.split(","):
        config = load_preset(preset)
        torch.manual_seed(0)
        state = build_model(config, build_task(config)).state_dict()

        def old(directory, n):
            for s in range(n):
                previous(directory, s, state)

        def new(directory, n):
            writer = RunWriter(directory)
            for s in range(n):
                writer.save_checkpoint(s, state, sync=False)
            writer.sync_checkpoints()

        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
            root = Path(tmp)
            old(root / "a", 2)
            new(root / "b", 2)
            name = checkpoint_name(1)
            a, b = (root / d / "checkpoints" / name for d in "ab")
            same = a.read_bytes() == b.read_bytes()
            size = a.stat().st_size
            t_old, t_new = best_ms(old, args.files, root), best_ms(new, args.files, root)
        print(f"{preset:10s} {size / 1e3:7.0f}KB {t_old:9.3f} {t_new:7.3f} {t_old / t_new:5.2f}x  "
              f"{'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

"""Which torch device a command runs on: `--device auto` (CUDA when present, else CPU), `cpu`,
`cuda` or `cuda:N`. Asking for CUDA where there is none is a one-line usage error."""

from __future__ import annotations

from grokscope.errors import UsageError


def resolve_device(name: str | None) -> str:
    import torch

    name = (name or "cpu").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: this machine has no CUDA device (torch.cuda.is_available() is "
                             "False); use --device cpu or --device auto")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
        return name
    raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")


__all__ = ["resolve_device"]

"""Which torch device a command runs on: `--device auto` (CUDA when present, else CPU), `cpu`,
`cuda` or `cuda:N`. Asking for CUDA where there is none is a one-line usage error."""

from __future__ import annotations

from grokscope.errors import UsageError


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process instead of returning it to the system.

    By default glibc gives large freed blocks back (blocks over 128 KB are mapped and unmapped one
    by one, and free space over 128 KB at the heap's top is trimmed), so a CPU training loop that
    frees and allocates the same activations and gradients every step faults every 4 KB page in
    again every step (`bench/stacked_groups.py`: the page faults and system time a stacked step of
    the toy phase diagram spends on it are in docs/benchmarks.md). Raising the mmap and trim thresholds keeps
    those pages mapped; the process holds on to its peak memory until it exits. Returns whether
    the thresholds were set (False where the C library has no `mallopt`: macOS, Windows)."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (AttributeError, OSError, TypeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # glibc caps the mmap threshold (32 MiB on older versions): try 1 GiB, then the cap
    mmap_ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) or mallopt(M_MMAP_THRESHOLD, 32 << 20)
    return bool(mmap_ok and mallopt(M_TRIM_THRESHOLD, 1 << 31))


def flush_denormals() -> bool:
    """Treat denormal floats (below about 1.2e-38 in float32) as zero on the CPU: a late run
    without weight decay fills its gradients with them, and each costs the CPU a slow path
    (docs/gotchas.md has the measured step times). The flag belongs to each thread, and torch's
    worker threads copy the main thread's when they start, so it reaches every thread only when
    set before torch's first parallel operation. Returns whether every thread now flushes:
    checked by multiplying a denormal tensor large enough to be split over the threads (False
    where the CPU has no such mode, or the worker threads started before)."""
    import torch

    if not torch.set_flush_denormal(True):
        return False
    # float32's smallest denormal, written as its bits (converting 1e-40 would itself be flushed);
    # 2^20 of them are split over every thread, and a thread that flushes reads them as zero
    probe = torch.ones(1 << 20, dtype=torch.int32).view(torch.float32)
    return not bool((probe * 1.0).count_nonzero())


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


__all__ = ["flush_denormals", "keep_freed_memory", "resolve_device"]

"""An accelerator stand-in for CPU-only machines: real arithmetic, another device's rules.

CI has no GPU, and a probe that makes a tensor on the host and mixes it with the model's tensors
passes every CPU test and fails on every GPU checkpoint. torch's FakeTensorMode catches the mix
but carries no values, so it stops at the first `.item()` or `.numpy()`, long before most of a
probe has run. `on_stand_in()` instead runs everything on the CPU for real while tensors that
were put on the stand-in device report `device == meta` (any non-CPU device serves: `meta` is
the one a CPU-only torch can name without CUDA's device guard). Inside it, as on CUDA:

- an operation that mixes a stand-in tensor with a CPU tensor of one or more dimensions raises
  `MixedDevices` (CUDA accepts 0-dimensional CPU tensors as scalars, and CPU index tensors in
  `x[idx]` and `x[idx] = v`; so does the stand-in);
- `.numpy()` of a stand-in tensor raises (numpy needs `.cpu()` first);
- `x.to(device)`, `torch.zeros(..., device=device)` and `module.to(device)` give stand-in tensors.

Host reads (`.item()`, `float()`, `bool()`, `.cpu()`, `.tolist()`) are counted in `host_reads`,
the count of device-to-host synchronizations the same code makes on a GPU.
"""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

DEVICE = "meta"
_META = torch.device(DEVICE)
_CPU_INDICES_ALLOWED = ("index", "index_put", "index_put_", "_index_put_impl_")
_HOST_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default}


class MixedDevices(RuntimeError):
    pass


class StandIn(torch.Tensor):
    """A CPU tensor `elem` that reports the stand-in device."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        r = torch.Tensor._make_wrapper_subclass(
            cls, elem.shape, strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, layout=elem.layout, device=_META, requires_grad=elem.requires_grad)
        r.elem = elem
        return r

    def __repr__(self) -> str:
        return f"StandIn({self.elem!r})"

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert a stand-in device tensor to numpy; use .cpu() first (as on CUDA)")

    def tolist(self):
        _count_host_read()
        return self.elem.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


_MODE: list["_StandInMode"] = []


def _to_stand_in(device) -> bool:
    return device is not None and torch.device(device).type == DEVICE


def _run(func, args, kwargs):
    mode = _MODE[-1] if _MODE else None
    seen_stand_in: list[bool] = []
    host: list[torch.Tensor] = []

    def unwrap(x):
        if isinstance(x, StandIn):
            seen_stand_in.append(True)
            return x.elem
        if isinstance(x, torch.Tensor) and x.device.type == DEVICE:
            raise TypeError(f"{func}: a tensor without data on {DEVICE!r}: made by a route the stand-in "
                            "device does not cover (tests/stand_in_device.py)")
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            host.append(x)
        return x

    device = kwargs.get("device")
    if _to_stand_in(device):
        kwargs = {**kwargs, "device": torch.device("cpu")}
    name = func.overloadpacket.__name__
    if name in _CPU_INDICES_ALLOWED:  # x[idx] with idx on the CPU is allowed on CUDA too
        a = (unwrap(args[0]), tree_map(lambda t: t.elem if isinstance(t, StandIn) else t, args[1]),
             *tree_map(unwrap, args[2:]))
        k = tree_map(unwrap, kwargs)
    else:
        a, k = tree_map(unwrap, args), tree_map(unwrap, kwargs)
    to_host = name == "_to_copy" and device is not None and torch.device(device).type == "cpu"
    if seen_stand_in and host and name != "copy_":  # copy_ is how data moves between devices
        shapes = [tuple(h.shape) for h in host]
        raise MixedDevices(f"{func} at {_caller()}: Expected all tensors to be on the same device, but found "
                           f"{len(host)} CPU tensor(s) of shape {', '.join(map(str, shapes))} beside tensors "
                           "on the device")
    out = func(*a, **k)
    into_host = name == "copy_" and not isinstance(args[0], StandIn)
    if mode is not None and seen_stand_in and (func in _HOST_READS or to_host or into_host):
        mode.host_reads += 1
    if to_host or out is None:
        return out
    if name.endswith("_") and args and isinstance(args[0], torch.Tensor):
        target = args[0]
        if isinstance(target, StandIn) and isinstance(out, torch.Tensor) and (
                target.shape != out.shape or target.stride() != out.stride()):
            # an in-place change of shape (squeeze_ in matmul's decomposition): the wrapper's own
            # metadata follows its data's (the wrapper lives on `meta`, where as_strided_ is free)
            with torch._C._DisableTorchDispatch():
                torch.ops.aten.as_strided_.default(target, out.shape, out.stride(), 0)
            target.elem = out
        return target  # in place: the result is the tensor written to, wrapped or not
    if not (seen_stand_in or _to_stand_in(device)):
        return out
    return tree_map(lambda x: StandIn(x) if isinstance(x, torch.Tensor) else x, out)


class _StandInMode(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _caller() -> str:
    """The innermost frame outside torch and this module: the line that mixed the devices."""
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename)
        if path.name != Path(__file__).name and "torch" not in path.parts:
            return f"{path.name}:{frame.lineno}"
    return "?"


def _count_host_read() -> None:
    if _MODE:
        _MODE[-1].host_reads += 1


def _from_data(make):
    """torch.tensor / torch.as_tensor with device=... create the tensor without dispatching."""
    def wrapper(data, *args, device=None, **kwargs):
        if _to_stand_in(device):
            return StandIn(make(data, *args, **kwargs))
        return make(data, *args, device=device, **kwargs)
    return wrapper


@contextlib.contextmanager
def on_stand_in():
    """Run the block with the stand-in device available as `stand_in_device.DEVICE`; yields
    the mode, whose `host_reads` counts device-to-host reads."""
    mode = _StandInMode()
    _MODE.append(mode)
    saved = torch.tensor, torch.as_tensor
    torch.tensor, torch.as_tensor = _from_data(torch.tensor), _from_data(torch.as_tensor)
    try:
        with mode:
            yield mode
    finally:
        torch.tensor, torch.as_tensor = saved
        _MODE.pop()

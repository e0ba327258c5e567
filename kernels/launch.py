"""Every Triton launch of mlip.kernels goes through ``launch``: one place that counts launches,
records their compile-time shape (for the ahead-of-time compile check, mlip.kernels.aot), keeps a
run alive when a kernel cannot run, and picks the precision of float32 products.

- Counting: ``launches[name]`` (tests and benchmarks read it).
- Recording: inside ``record()`` every launch adds a ``LaunchSpec`` (kernel, argument types,
  constexprs, warps) to the recorder; with ``dry=True`` the kernel itself does not run, its torch
  fallback computes the result, so any model at any size can be recorded on a CPU without the
  interpreter.
- Fallback: in ``auto`` mode a launch that fails (out of resources, a compile error, an unsupported
  GPU) runs the torch fallback instead and warns once per kernel, shape and dtype; a forced
  ``triton`` backend stays strict and raises.
- Precision: float32 ``tl.dot`` products are IEEE float32 unless torch's own switch allows TF32
  (``torch.backends.cuda.matmul.fp32_precision = "tf32"``, or the older ``allow_tf32 = True`` /
  ``torch.set_float32_matmul_precision("high")``), the switch that also governs torch's matmuls on
  the reference path.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import warnings
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import torch

from mlip.kernels import dispatch

# launches of each Triton kernel in this process (what ran, for tests and benchmarks)
launches: collections.Counter = collections.Counter()

_TYPES = {torch.float32: "fp32", torch.float64: "fp64", torch.float16: "fp16", torch.bfloat16: "bf16",
          torch.int32: "i32", torch.int64: "i64", torch.int8: "i8", torch.bool: "i1"}


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """What a compilation of one kernel depends on: its module and name, the Triton type of every
    runtime argument ("*fp32", "i32", ...), the constexprs and the number of warps."""

    module: str
    kernel: str
    signature: Tuple[Tuple[str, str], ...]
    constexprs: Tuple[Tuple[str, object], ...]
    num_warps: int

    def describe(self) -> str:
        dtypes = sorted({t[1:] for _, t in self.signature if t.startswith("*fp")})
        blocks = ", ".join(f"{k}={v}" for k, v in self.constexprs)
        return f"{self.kernel} [{'/'.join(dtypes)}] {blocks} warps={self.num_warps}"


class Recorder:
    """The distinct launches seen inside ``record()``, in first-seen order (``specs``)."""

    def __init__(self, dry: bool):
        self.dry = dry
        self.specs: Dict[LaunchSpec, None] = {}

    def add(self, spec: LaunchSpec) -> None:
        self.specs.setdefault(spec, None)


_recorders: List[Recorder] = []
_warned: set = set()


@contextlib.contextmanager
def record(dry: bool = False) -> Iterator[Recorder]:
    """Collect the LaunchSpec of every launch in the block; ``dry``: run the torch fallbacks instead
    of the kernels (then the triton backend works on CPU tensors without the interpreter)."""
    recorder = Recorder(dry)
    _recorders.append(recorder)
    try:
        yield recorder
    finally:
        _recorders.remove(recorder)


def dry_run() -> bool:
    """True inside ``record(dry=True)``: kernels are recorded, not run."""
    return any(r.dry for r in _recorders)


def tf32_allowed() -> bool:
    """torch's float32 matmul switch for CUDA: TF32 only when the user has allowed it for torch too
    (``torch.backends.cuda.matmul.fp32_precision``, which the legacy ``allow_tf32`` and
    ``set_float32_matmul_precision`` also set; reading the legacy flag after the new API raises)."""
    matmul = torch.backends.cuda.matmul
    precision = getattr(matmul, "fp32_precision", None)
    return precision == "tf32" if precision is not None else bool(matmul.allow_tf32)


def dot_precision(dtype: torch.dtype) -> str:
    """The ``input_precision`` constexpr of the float32 ``tl.dot`` calls ("ieee" unless TF32 is allowed)."""
    return "tf32" if dtype == torch.float32 and tf32_allowed() else "ieee"


def block_size(n: int, cap: int) -> int:
    """A tile dimension for ``n`` entries: a power of two, at least 16 (tl.dot's smallest), at most ``cap``."""
    size = 16
    while size < n and size < cap:
        size *= 2
    return min(size, cap)


def num_warps_for(tile_elements: int) -> int:
    """Warps for a program whose largest register tile has ``tile_elements`` entries: 8 from 2048
    up (at 4, such tiles spill registers on sm_80/sm_90, as ``ptxas -v`` shows), else 4."""
    return 8 if tile_elements >= 2048 else 4


def _triton_type(value) -> str:
    if isinstance(value, torch.Tensor):
        return "*" + _TYPES[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a kernel argument of type {type(value).__name__}")


def spec_of(kernel, args: Sequence, constexprs: Dict[str, object], num_warps: int) -> LaunchSpec:
    fn = getattr(kernel, "fn", kernel)  # the Python function under @triton.jit (or the interpreter's wrapper)
    names = list(kernel.arg_names)
    runtime = [n for n in names if n not in constexprs]
    if len(runtime) != len(args):
        raise TypeError(f"{fn.__name__}: {len(args)} arguments for {len(runtime)} runtime parameters")
    signature = tuple((n, _triton_type(a)) for n, a in zip(runtime, args))
    return LaunchSpec(fn.__module__, fn.__name__, signature, tuple(constexprs.items()), num_warps)


def _shapes(args: Sequence) -> str:
    return ", ".join(f"{tuple(a.shape)} {str(a.dtype).replace('torch.', '')}" for a in args
                     if isinstance(a, torch.Tensor))


def launch(name: str, kernel, grid: Tuple[int, ...], args: Sequence, constexprs: Dict[str, object],
           fallback: Callable[[], None], num_warps: int = 4) -> None:
    """Run ``kernel[grid](*args, **constexprs)``; ``fallback()`` computes the same outputs in torch
    (writing into the same output tensors) when the kernel is recorded dry or cannot run in auto mode."""
    launches[name] += 1
    if _recorders:
        spec = spec_of(kernel, args, constexprs, num_warps)
        for recorder in _recorders:
            recorder.add(spec)
        if dry_run():
            fallback()
            return
    try:
        kernel[grid](*args, **constexprs, num_warps=num_warps)
    except Exception as error:  # noqa: BLE001 - any failure of a launch falls back in auto mode
        if dispatch.get_backend() == "triton":
            raise
        key = (name, _shapes(args))
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"mlip.kernels: the Triton kernel {name} failed for {key[1]} "
                          f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                          f"running its torch reference instead (MLIP_KERNELS=triton makes this an error)",
                          RuntimeWarning, stacklevel=3)
        fallback()

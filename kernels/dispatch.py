"""Which implementation a kernel call runs: Triton or its torch reference.

``auto`` (the default) runs Triton on CUDA tensors and, on CPU, a kernel's CPU implementation where
it has one (block_aggregate's sparse product, grid_mlp's in eval mode), else the reference;
``triton`` forces the Triton kernels (on CPU they need ``TRITON_INTERPRET=1``, set before triton is
imported: the tests do this); ``torch`` forces the references. Set it with the environment variable ``MLIP_KERNELS`` or
``set_backend`` / the ``backend(...)`` context manager. TorchScript always takes the reference.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

BACKENDS = ("auto", "triton", "torch")

try:
    import triton  # noqa: F401
    import triton.language  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton is a Linux dependency of mlip
    HAS_TRITON = False

_backend = os.environ.get("MLIP_KERNELS", "auto")
if _backend not in BACKENDS:
    raise ValueError(f"MLIP_KERNELS={_backend!r}: choose one of {', '.join(BACKENDS)}")


def set_backend(name: str) -> None:
    """Pick ``auto``, ``triton`` or ``torch`` for every kernel call from now on."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "triton" and not HAS_TRITON:
        raise RuntimeError("the triton backend was asked for but triton is not installed")
    _backend = name


def get_backend() -> str:
    return _backend


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """``with mlip.kernels.backend("triton"): ...`` runs the block with that backend."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def use_triton(tensor: torch.Tensor) -> bool:
    """True when a kernel called on ``tensor`` should run its Triton implementation."""
    if _backend == "torch" or not HAS_TRITON:
        return False
    if _backend == "triton":
        from mlip.kernels.launch import dry_run

        if not tensor.is_cuda and not interpreted() and not dry_run():
            raise RuntimeError("mlip.kernels backend 'triton' on CPU tensors needs TRITON_INTERPRET=1 "
                               "(set before triton is imported) or a dry recording (mlip.kernels.launch.record)")
        return True
    return tensor.is_cuda

"""The check every kernel takes: Triton (forced, through the interpreter on CPU) against its torch
reference in values, first and second derivatives, and torch.autograd.gradcheck / gradgradcheck.

The kernel tests build their inputs on ``DEVICE``: the CPU (the interpreter), or the GPU when
``MLIP_TEST_DEVICE=cuda`` (scripts/gpu_check.sh: the kernels compiled for the real device)."""

from __future__ import annotations

import os
from typing import Callable, Sequence, Tuple

import torch

from mlip.kernels import backend

DEVICE = torch.device(os.environ.get("MLIP_TEST_DEVICE", "cpu"))


def on_device(*tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Copies on DEVICE, leaves that require grad as the originals did."""
    return tuple(t.detach().to(DEVICE).requires_grad_(t.requires_grad) for t in tensors)


def _outputs(fn: Callable, inputs: Sequence[torch.Tensor]):
    out = fn(*inputs)
    return out if isinstance(out, tuple) else (out,)


def assert_matches_reference(kernel: Callable, reference: Callable, inputs: Sequence[torch.Tensor],
                             rtol: float = 1e-10, atol: float = 1e-12, gradcheck: bool = True,
                             kernel_backend: str = "triton") -> None:
    """``kernel(*inputs)`` (under ``kernel_backend``: "triton", or "auto" for a kernel's CPU
    implementation) equals ``reference(*inputs)``; so do the gradients
    of a random projection of the output and the gradients of a random projection of those gradients.
    ``inputs`` that require grad are differentiated. With ``gradcheck`` (float64 inputs), also
    torch.autograd.gradcheck and gradgradcheck of the Triton path (fast mode)."""
    differentiable = [t for t in inputs if t.requires_grad]
    torch.manual_seed(1234)
    results = {}
    for name, fn in (("triton", kernel), ("torch", reference)):
        with backend(kernel_backend if name == "triton" else "torch"):
            out = _outputs(fn, inputs)
            projections = [torch.randn(o.shape, dtype=o.dtype, generator=torch.Generator().manual_seed(i)).to(o.device)
                           for i, o in enumerate(out)]
            scalar = sum((o * w).sum() for o, w in zip(out, projections))
            grads = torch.autograd.grad(scalar, differentiable, create_graph=True, allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(t) for g, t in zip(grads, differentiable)]
            second_scalar = sum((g * torch.linspace(-1, 1, g.numel(), dtype=g.dtype, device=g.device).view_as(g)).sum()
                                for g in grads if g.requires_grad)
            second = (torch.autograd.grad(second_scalar, differentiable, allow_unused=True)
                      if torch.is_tensor(second_scalar) and second_scalar.requires_grad else [None] * len(differentiable))
            second = [g if g is not None else torch.zeros_like(t) for g, t in zip(second, differentiable)]
        results[name] = ([o.detach() for o in out], [g.detach() for g in grads], second)
    for what, a, b in zip(("values", "first derivatives", "second derivatives"), results["triton"], results["torch"]):
        for i, (x, y) in enumerate(zip(a, b)):
            torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m: f"{what} [{i}]: {m}")
    if gradcheck and differentiable:
        def triton_fn(*xs):
            with backend(kernel_backend):
                args = list(inputs)
                it = iter(xs)
                args = [next(it) if t.requires_grad else t for t in args]
                return _outputs(kernel, args)

        assert torch.autograd.gradcheck(triton_fn, differentiable, fast_mode=True)
        assert torch.autograd.gradgradcheck(triton_fn, differentiable, fast_mode=True)

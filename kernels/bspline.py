"""Uniform cubic B-spline radial functions straight from the coefficient table.

``bspline(r (E,), coefficients (num_basis, P), cutoff, order=0) -> (E, P)``: the ``order``-th
derivative in r (Å^-order) of sum_j B_j(r / h) coefficients[j], knot spacing h = cutoff / (num_basis - 3),
the basis of mlip.nn.radial.cubic_bspline_basis. Each edge reads the four coefficient rows of its knot
interval: no (E, num_basis) basis matrix is formed. Beyond the cutoff the value is the end value and
every derivative is zero (as the clamped reference gives). The torch reference forms the basis
matrix, which on the CPU is the fastest way.

The backward of order k is order k + 1 (for r) and the transposed evaluation (for the coefficients),
and the backward of the transposed evaluation is orders k and k + 1 again, so derivatives of every
order exist (order 4 and above are zero).
"""

from __future__ import annotations

from typing import Tuple

import torch

from mlip.kernels.dispatch import HAS_TRITON, use_triton
from mlip.kernels.launch import block_size, launch, num_warps_for

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _bspline_kernel(r_ptr, coef_ptr, out_ptr, params_ptr, edges, paths,
                        ORDER: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_P: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
        cols = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        row_mask = rows < edges
        mask = row_mask[:, None] & (cols[None, :] < paths)
        r = tl.load(r_ptr + rows, mask=row_mask, other=0.0)
        inv_h = tl.load(params_ptr)  # in r's precision (a float argument would be fp32)
        t_max = tl.load(params_ptr + 1)
        scale = tl.load(params_ptr + 2)
        t_raw = r * inv_h
        t = tl.minimum(tl.maximum(t_raw, 0.0), t_max)
        knot = tl.minimum(tl.floor(t), tl.load(params_ptr + 3))  # t_max rounds up to the last knot in fp32
        u = t - knot
        if ORDER == 0:
            w0 = (1 - u) * (1 - u) * (1 - u) / 6
            w1 = (3 * u * u * u - 6 * u * u + 4) / 6
            w2 = (-3 * u * u * u + 3 * u * u + 3 * u + 1) / 6
            w3 = u * u * u / 6
        elif ORDER == 1:
            w0 = -(1 - u) * (1 - u) / 2
            w1 = (3 * u * u - 4 * u) / 2
            w2 = (-3 * u * u + 2 * u + 1) / 2
            w3 = u * u / 2
        elif ORDER == 2:
            w0 = 1 - u
            w1 = 3 * u - 2
            w2 = 1 - 3 * u
            w3 = u
        else:
            w0 = u * 0 - 1
            w1 = u * 0 + 3
            w2 = u * 0 - 3
            w3 = u * 0 + 1
        if ORDER > 0:  # the clamp's derivative: zero outside [0, cutoff)
            inside = (t_raw >= 0) & (t_raw <= t_max)
            factor = tl.where(inside, scale, 0.0)
            w0, w1, w2, w3 = w0 * factor, w1 * factor, w2 * factor, w3 * factor
        base = knot.to(tl.int64) * paths
        c = cols[None, :]
        acc = w0[:, None] * tl.load(coef_ptr + base[:, None] + c, mask=mask, other=0.0)
        acc += w1[:, None] * tl.load(coef_ptr + base[:, None] + paths + c, mask=mask, other=0.0)
        acc += w2[:, None] * tl.load(coef_ptr + base[:, None] + 2 * paths + c, mask=mask, other=0.0)
        acc += w3[:, None] * tl.load(coef_ptr + base[:, None] + 3 * paths + c, mask=mask, other=0.0)
        tl.store(out_ptr + rows.to(tl.int64)[:, None] * paths + c, acc.to(out_ptr.dtype.element_ty), mask=mask)


def interval_weights(r: torch.Tensor, num_basis: int, cutoff: float, order: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """knot (E,) int64 and weights (E, 4): the ``order``-th r-derivative of the four B-splines that
    are non-zero on each edge's knot interval (torch; differentiable in r)."""
    h = cutoff / (num_basis - 3)
    t_max = (num_basis - 3) - 1e-9
    t_raw = r / h
    t = t_raw.clamp(min=0.0, max=t_max)
    knot = torch.floor(t.detach()).clamp(max=num_basis - 4)  # t_max rounds up to the last knot in float32
    u = t - knot
    if order == 0:
        w = [(1 - u) ** 3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6, (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6, u**3 / 6]
    elif order == 1:
        w = [-((1 - u) ** 2) / 2, (3 * u**2 - 4 * u) / 2, (-3 * u**2 + 2 * u + 1) / 2, u**2 / 2]
    elif order == 2:
        w = [1 - u, 3 * u - 2, 1 - 3 * u, u]
    elif order == 3:
        one = torch.ones_like(u)
        w = [-one, 3 * one, -3 * one, one]
    else:
        w = [torch.zeros_like(u)] * 4
    weights = torch.stack(w, dim=-1)
    if order > 0:
        inside = ((t_raw >= 0) & (t_raw <= t_max)).to(r.dtype)
        weights = weights * (inside * h ** (-order)).unsqueeze(-1)
    return knot.long(), weights


def basis_matrix(r: torch.Tensor, num_basis: int, cutoff: float, order: int) -> torch.Tensor:
    """(E, num_basis): the order-th r-derivative of every B-spline at every edge (four non-zeros a row)."""
    knot, weights = interval_weights(r, num_basis, cutoff, order)
    rows = knot.unsqueeze(-1) + torch.arange(4, device=r.device)
    return r.new_zeros(r.shape[0], num_basis).scatter(-1, rows, weights)


def bspline_reference(r: torch.Tensor, coefficients: torch.Tensor, cutoff: float, order: int = 0) -> torch.Tensor:
    """The torch reference: the (E, num_basis) basis matrix times the table (on the CPU a matmul is
    faster than the four-row gather), differentiated by autograd."""
    return basis_matrix(r, coefficients.shape[0], cutoff, order) @ coefficients


def _transpose(r: torch.Tensor, grad: torch.Tensor, num_basis: int, cutoff: float, order: int) -> torch.Tensor:
    """(num_basis, P): basis^T grad, the coefficient gradient (a matmul: deterministic, unlike atomics;
    this backward is the one place the (E, num_basis) basis is formed)."""
    return basis_matrix(r, num_basis, cutoff, order).transpose(0, 1) @ grad


def _launch(r: torch.Tensor, coefficients: torch.Tensor, cutoff: float, order: int) -> torch.Tensor:
    num_basis, paths = coefficients.shape
    edges = r.shape[0]
    out = r.new_empty(edges, paths)
    if order >= 4:
        return out.zero_()
    if edges == 0 or paths == 0:
        return out
    h = cutoff / (num_basis - 3)
    block_p = block_size(paths, 64)
    block_e = 32
    grid = (triton.cdiv(edges, block_e), triton.cdiv(paths, block_p))
    params = torch.tensor([1.0 / h, (num_basis - 3) - 1e-9, h ** (-order), num_basis - 4], dtype=r.dtype,
                          device=r.device)
    launch("bspline", _bspline_kernel, grid, (r.contiguous(), coefficients.to(r.dtype).contiguous(), out, params,
                                              edges, paths),
           dict(ORDER=order, BLOCK_E=block_e, BLOCK_P=block_p),
           lambda: out.copy_(bspline_reference(r, coefficients.to(r.dtype), cutoff, order)),
           num_warps=num_warps_for(block_e * block_p))
    return out


class _BSpline(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, coefficients, cutoff: float, order: int):
        ctx.save_for_backward(r, coefficients)
        ctx.cutoff, ctx.order = cutoff, order
        return _launch(r, coefficients, cutoff, order)

    @staticmethod
    def backward(ctx, grad):
        r, coefficients = ctx.saved_tensors
        grad_r = grad_c = None
        if ctx.needs_input_grad[0]:
            grad_r = (grad * _BSpline.apply(r, coefficients, ctx.cutoff, ctx.order + 1)).sum(-1)
        if ctx.needs_input_grad[1]:
            grad_c = _BSplineTranspose.apply(r, grad, coefficients.shape[0], ctx.cutoff, ctx.order)
            grad_c = grad_c.to(coefficients.dtype)
        return grad_r, grad_c, None, None


class _BSplineTranspose(torch.autograd.Function):
    """(r, grad (E, P)) -> (num_basis, P), the coefficient gradient of _BSpline."""

    @staticmethod
    def forward(ctx, r, grad, num_basis: int, cutoff: float, order: int):
        ctx.save_for_backward(r, grad)
        ctx.cutoff, ctx.order = cutoff, order
        with torch.no_grad():
            return _transpose(r, grad, num_basis, cutoff, order)

    @staticmethod
    def backward(ctx, grad_table):
        r, grad = ctx.saved_tensors
        grad_r = grad_g = None
        if ctx.needs_input_grad[0]:
            grad_r = (grad * _BSpline.apply(r, grad_table, ctx.cutoff, ctx.order + 1)).sum(-1)
        if ctx.needs_input_grad[1]:
            grad_g = _BSpline.apply(r, grad_table, ctx.cutoff, ctx.order)
        return grad_r, grad_g, None, None, None


def bspline(r: torch.Tensor, coefficients: torch.Tensor, cutoff: float, order: int = 0) -> torch.Tensor:
    """(E,) Å, (num_basis, P) -> (E, P) order-th r-derivative of the spline; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(r):
            return _BSpline.apply(r, coefficients, float(cutoff), int(order))
    return bspline_reference(r, coefficients, cutoff, order)

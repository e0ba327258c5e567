"""The spherical-grid node update of Facet and eSCN, fused: projection to the grid points, the
pointwise channel product-MLP and the projection back, one node per program, the grid points in
blocks, so the (N, P, hidden) grid tensor is never written to memory.

``grid_mlp(x (N, S, C), to_grid (P, S), from_grid (S, P), left_w (H, C), left_b (H,), right_w (H, C),
right_b (H,), out_w (C_out, H)) -> (N, S, C_out)`` =
from_grid @ [((to_grid @ x) left_w^T + left_b) * ((to_grid @ x) right_w^T + right_b)] out_w^T
(mlip.nn.grid_mlp.GridProductMLP). Backward: the reference recomputed and differentiated
(mlip.kernels.recompute), so it is differentiable again.
"""

from __future__ import annotations

import torch

from mlip.kernels.dispatch import HAS_TRITON, launches, use_triton
from mlip.kernels.recompute import reference_vjp

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _grid_mlp_kernel(x_ptr, to_ptr, from_ptr, lw_ptr, lb_ptr, rw_ptr, rb_ptr, ow_ptr, out_ptr,
                         S, P, C, H, CO, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                         BLOCK_H: tl.constexpr, BLOCK_CO: tl.constexpr):
        node = tl.program_id(0).to(tl.int64)
        s = tl.arange(0, BLOCK_S)
        c = tl.arange(0, BLOCK_C)
        h = tl.arange(0, BLOCK_H)
        co = tl.arange(0, BLOCK_CO)
        x = tl.load(x_ptr + node * S * C + s[:, None] * C + c[None, :], mask=(s[:, None] < S) & (c[None, :] < C),
                    other=0.0)
        w_mask = (c[:, None] < C) & (h[None, :] < H)
        left_t = tl.load(lw_ptr + h[None, :] * C + c[:, None], mask=w_mask, other=0.0)  # (C, H)
        right_t = tl.load(rw_ptr + h[None, :] * C + c[:, None], mask=w_mask, other=0.0)
        left_b = tl.load(lb_ptr + h, mask=h < H, other=0.0)
        right_b = tl.load(rb_ptr + h, mask=h < H, other=0.0)
        out_t = tl.load(ow_ptr + co[None, :] * H + h[:, None], mask=(h[:, None] < H) & (co[None, :] < CO),
                        other=0.0)  # (H, C_out)
        acc = tl.zeros([BLOCK_S, BLOCK_CO], dtype=x.dtype)
        for start in range(0, P, BLOCK_P):
            p = start + tl.arange(0, BLOCK_P)
            to_block = tl.load(to_ptr + p[:, None] * S + s[None, :], mask=(p[:, None] < P) & (s[None, :] < S),
                               other=0.0)  # (BLOCK_P, S)
            g = tl.dot(to_block, x)  # the grid values of this block of points, (BLOCK_P, C)
            a = tl.dot(g, left_t) + left_b[None, :]
            b = tl.dot(g, right_t) + right_b[None, :]
            o = tl.dot(a * b, out_t)  # (BLOCK_P, C_out)
            from_block = tl.load(from_ptr + s[:, None] * P + p[None, :], mask=(s[:, None] < S) & (p[None, :] < P),
                                 other=0.0)  # (S, BLOCK_P); zero at padded points
            acc += tl.dot(from_block, o)
        tl.store(out_ptr + node * S * CO + s[:, None] * CO + co[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=(s[:, None] < S) & (co[None, :] < CO))


def grid_mlp_reference(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w):
    """The torch reference: the grid tensor in full."""
    g = torch.einsum("ps,nsc->npc", to_grid, x)
    hidden = torch.nn.functional.linear(g, left_w, left_b) * torch.nn.functional.linear(g, right_w, right_b)
    return torch.einsum("sp,npc->nsc", from_grid, torch.nn.functional.linear(hidden, out_w))


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(n))  # tl.dot wants every dimension >= 16


def _launch(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w):
    launches["grid_mlp"] += 1
    n, s, c = x.shape
    p, h, co = to_grid.shape[0], left_w.shape[0], out_w.shape[0]
    out = x.new_empty(n, s, co)
    if n == 0:
        return out
    dtype = x.dtype
    args = [t.to(dtype).contiguous() for t in (to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)]
    _grid_mlp_kernel[(n,)](x.contiguous(), *args, out, s, p, c, h, co, BLOCK_S=_block(s), BLOCK_P=16,
                           BLOCK_C=_block(c), BLOCK_H=_block(h), BLOCK_CO=_block(co))
    return out


class _GridMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *inputs):
        ctx.save_for_backward(*inputs)
        return _launch(*inputs)

    @staticmethod
    def backward(ctx, grad):
        return tuple(reference_vjp(grid_mlp_reference, ctx.saved_tensors, ctx.needs_input_grad, grad))


def grid_mlp(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor, left_w: torch.Tensor,
             left_b: torch.Tensor, right_w: torch.Tensor, right_b: torch.Tensor, out_w: torch.Tensor) -> torch.Tensor:
    """(N, S, C) -> (N, S, C_out), the fused sphere-grid product MLP; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(x):
            return _GridMLP.apply(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)
    return grid_mlp_reference(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)

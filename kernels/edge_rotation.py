"""eSCN edge rotation: block Wigner-D into each edge's frame fused with the |m| <= mmax truncation,
and its inverse.

``rotate_into(d (E, K, S), x (E, S, C), row_start (K,), row_end (K,)) -> (E, K, C)``: row k of the
truncated rotation d acts only on the coefficients of its own degree, columns row_start[k] to
row_end[k] - 1 (l^2 to (l+1)^2 - 1); the kernel reads just those, so the cost is sum over degrees of
(kept rows) x (2l + 1) instead of K x S. ``rotate_out_of(d, y (E, K, C), row_start, row_end) ->
(E, S, C)`` is its transpose. Rows come grouped by degree (mlip.nn.so2.kept_coefficients).
Both are linear in each argument; each one's backward is the other plus a masked outer product for
d, so derivatives of every order exist. Entries of d outside the degree blocks never take part
(the reference masks them the same way).
"""

from __future__ import annotations

import torch

from mlip.kernels.dispatch import HAS_TRITON, use_triton
from mlip.kernels.launch import block_size, launch

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _block_rotation_kernel(d_ptr, x_ptr, out_ptr, lo_ptr, hi_ptr, edges, channels,
                               d_rows, d_cols, x_rows, out_rows, TRANSPOSE: tl.constexpr, FP64: tl.constexpr,
                               BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr):
        """out[e, i, c] = sum over j in [lo[i], hi[i]) of A[e, i, j] x[e, j, c], with A = d (i = row k,
        j = column s) or A = d^T (TRANSPOSE: i = column s, j = row k)."""
        edge = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
        cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        edge_mask = edge < edges
        mask = edge_mask[:, None] & (cols[None, :] < channels)
        e64 = edge.to(tl.int64)
        d_base = e64 * d_rows * d_cols
        x_base = e64[:, None] * x_rows * channels + cols[None, :]
        out_base = e64[:, None] * out_rows * channels + cols[None, :]
        for i in range(0, out_rows):
            lo = tl.load(lo_ptr + i)
            hi = tl.load(hi_ptr + i)
            if FP64:
                acc = tl.zeros([BLOCK_E, BLOCK_C], dtype=tl.float64)
            else:
                acc = tl.zeros([BLOCK_E, BLOCK_C], dtype=tl.float32)
            for j in range(lo, hi):
                if TRANSPOSE:
                    a = tl.load(d_ptr + d_base + j * d_cols + i, mask=edge_mask, other=0.0)
                else:
                    a = tl.load(d_ptr + d_base + i * d_cols + j, mask=edge_mask, other=0.0)
                v = tl.load(x_ptr + x_base + j * channels, mask=mask, other=0.0)
                acc += a[:, None].to(acc.dtype) * v.to(acc.dtype)
            tl.store(out_ptr + out_base + i * channels, acc.to(out_ptr.dtype.element_ty), mask=mask)


def block_mask(row_start: torch.Tensor, row_end: torch.Tensor, num_coefficients: int) -> torch.Tensor:
    """(K, S) bool: True where row k's degree block meets column s."""
    cols = torch.arange(num_coefficients, device=row_start.device)
    return (cols >= row_start[:, None]) & (cols < row_end[:, None])


def rotate_into_reference(d: torch.Tensor, x: torch.Tensor, row_start: torch.Tensor, row_end: torch.Tensor) -> torch.Tensor:
    return torch.bmm(d * block_mask(row_start, row_end, d.shape[2]).to(d.dtype), x)


def rotate_out_of_reference(d: torch.Tensor, y: torch.Tensor, row_start: torch.Tensor, row_end: torch.Tensor) -> torch.Tensor:
    return torch.bmm((d * block_mask(row_start, row_end, d.shape[2]).to(d.dtype)).transpose(1, 2), y)


def _column_ranges(row_start: torch.Tensor, num_coefficients: int):
    """For each column s, the rows [lo, hi) of its degree (rows grouped by degree)."""
    cols = torch.arange(num_coefficients, device=row_start.device)
    degree_start = torch.floor(torch.sqrt(cols.double())).long() ** 2
    lo = torch.searchsorted(row_start.contiguous(), degree_start, side="left")
    hi = torch.searchsorted(row_start.contiguous(), degree_start, side="right")
    return lo.to(torch.int32).contiguous(), hi.to(torch.int32).contiguous()


def _launch(d, x, row_start, row_end, transpose: bool):
    """rotate_into (``transpose`` False) or rotate_out_of of x by d."""
    edges, channels = x.shape[0], x.shape[2]
    out_rows = d.shape[2] if transpose else d.shape[1]
    out = x.new_empty(edges, out_rows, channels)
    if edges == 0 or channels == 0 or out_rows == 0:
        return out.zero_()
    if transpose:
        lo, hi = _column_ranges(row_start, d.shape[2])
    else:
        lo, hi = row_start.to(torch.int32).contiguous(), row_end.to(torch.int32).contiguous()
    block_c = block_size(channels, 64)
    block_e = 16
    grid = (triton.cdiv(edges, block_e), triton.cdiv(channels, block_c))
    reference = rotate_out_of_reference if transpose else rotate_into_reference
    launch("edge_rotation", _block_rotation_kernel, grid,
           (d.contiguous(), x.contiguous(), out, lo, hi, edges, channels, d.shape[1], d.shape[2], x.shape[1], out_rows),
           dict(TRANSPOSE=transpose, FP64=x.dtype == torch.float64, BLOCK_E=block_e, BLOCK_C=block_c),
           lambda: out.copy_(reference(d, x, row_start, row_end)))
    return out


def _masked_outer(a: torch.Tensor, b: torch.Tensor, row_start, row_end) -> torch.Tensor:
    """(E, K, C) x (E, S, C) -> (E, K, S) = a b^T on the degree blocks (the gradient for d)."""
    return torch.bmm(a, b.transpose(1, 2)) * block_mask(row_start, row_end, b.shape[1]).to(a.dtype)


class _RotateInto(torch.autograd.Function):
    @staticmethod
    def forward(ctx, d, x, row_start, row_end):
        ctx.save_for_backward(d, x, row_start, row_end)
        return _launch(d, x, row_start, row_end, False)

    @staticmethod
    def backward(ctx, grad):
        d, x, row_start, row_end = ctx.saved_tensors
        grad_d = _masked_outer(grad, x, row_start, row_end) if ctx.needs_input_grad[0] else None
        grad_x = _RotateOutOf.apply(d, grad, row_start, row_end) if ctx.needs_input_grad[1] else None
        return grad_d, grad_x, None, None


class _RotateOutOf(torch.autograd.Function):
    @staticmethod
    def forward(ctx, d, y, row_start, row_end):
        ctx.save_for_backward(d, y, row_start, row_end)
        return _launch(d, y, row_start, row_end, True)

    @staticmethod
    def backward(ctx, grad):
        d, y, row_start, row_end = ctx.saved_tensors
        grad_d = _masked_outer(y, grad, row_start, row_end) if ctx.needs_input_grad[0] else None
        grad_y = _RotateInto.apply(d, grad, row_start, row_end) if ctx.needs_input_grad[1] else None
        return grad_d, grad_y, None, None


def rotate_into(d: torch.Tensor, x: torch.Tensor, row_start: torch.Tensor, row_end: torch.Tensor) -> torch.Tensor:
    """(E, K, S), (E, S, C) -> (E, K, C) in the edge frames; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(x):
            return _RotateInto.apply(d, x, row_start, row_end)
    return rotate_into_reference(d, x, row_start, row_end)


def rotate_out_of(d: torch.Tensor, y: torch.Tensor, row_start: torch.Tensor, row_end: torch.Tensor) -> torch.Tensor:
    """(E, K, S), (E, K, C) -> (E, S, C) back from the edge frames; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(y):
            return _RotateOutOf.apply(d, y, row_start, row_end)
    return rotate_out_of_reference(d, y, row_start, row_end)

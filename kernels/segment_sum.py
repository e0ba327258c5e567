"""Edge-to-node segmented sum, deterministic, and its gather backward.

``segment_sum(src (E, ...), index (E,), dim_size) -> (dim_size, ...)``: out[i] = sum of src[k] over
k with index[k] == i. The Triton kernel wants the edges sorted by receiver (the graph builder emits
them so; otherwise they are sorted here, stably): one program per (node, feature block) adds that
node's edges in their order, so every run gives the same bits (no atomics). The backward is the
gather grad[index], whose own backward is this sum again, so derivatives of every order exist.
"""

from __future__ import annotations

import torch

from mlip.kernels.dispatch import HAS_TRITON, use_triton
from mlip.kernels.launch import block_size, launch

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _segment_sum_kernel(src, offsets, out, features, BLOCK: tl.constexpr, FP64: tl.constexpr):
        node = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < features
        start = tl.load(offsets + node)
        end = tl.load(offsets + node + 1)
        if FP64:
            acc = tl.zeros([BLOCK], dtype=tl.float64)
        else:
            acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k in range(start, end):
            acc += tl.load(src + k * features + cols, mask=mask, other=0.0).to(acc.dtype)
        tl.store(out + node.to(tl.int64) * features + cols, acc.to(out.dtype.element_ty), mask=mask)


def segment_sum_reference(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """The torch reference: index_add (any edge order)."""
    out = src.new_zeros([dim_size] + list(src.shape[1:]))
    return out.index_add(0, index, src)


def _launch(src: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, dim_size: int) -> torch.Tensor:
    out = src.new_empty([dim_size] + list(src.shape[1:]))
    features = 1
    for s in src.shape[1:]:
        features *= s
    if dim_size == 0 or features == 0:
        return out.zero_()
    block = block_size(features, 256)
    grid = (dim_size, triton.cdiv(features, block))
    launch("segment_sum", _segment_sum_kernel, grid, (src.contiguous(), offsets, out, features),
           dict(BLOCK=block, FP64=src.dtype == torch.float64),
           lambda: out.copy_(segment_sum_reference(src, index, dim_size)))
    return out


class _SegmentSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index, offsets, dim_size: int):
        ctx.save_for_backward(index, offsets)
        ctx.dim_size = dim_size
        return _launch(src, index, offsets, dim_size)

    @staticmethod
    def backward(ctx, grad):
        index, offsets = ctx.saved_tensors
        return _Gather.apply(grad, index, offsets, ctx.dim_size), None, None, None


class _Gather(torch.autograd.Function):
    """x[index] for a sorted index, whose backward is the deterministic segmented sum."""

    @staticmethod
    def forward(ctx, x, index, offsets, dim_size: int):
        ctx.save_for_backward(index, offsets)
        ctx.dim_size = dim_size
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        index, offsets = ctx.saved_tensors
        return _SegmentSum.apply(grad, index, offsets, ctx.dim_size), None, None, None


def segment_offsets(sorted_index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """(dim_size + 1,) start of each node's run of edges in ``sorted_index``."""
    nodes = torch.arange(dim_size + 1, device=sorted_index.device, dtype=sorted_index.dtype)
    return torch.searchsorted(sorted_index, nodes, side="left")


@torch.jit.unused
def _segment_sum_triton(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    if index.numel() > 1 and not bool((index[1:] >= index[:-1]).all()):
        order = torch.sort(index, stable=True).indices
        src, index = src.index_select(0, order), index.index_select(0, order)
    return _SegmentSum.apply(src, index, segment_offsets(index, dim_size), dim_size)


def segment_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[i] = sum of src[k] over index[k] == i; (E, ...) -> (dim_size, ...). Triton or reference
    (mlip.kernels.dispatch)."""
    if not torch.jit.is_scripting():
        if use_triton(src):
            return _segment_sum_triton(src, index, dim_size)
    return segment_sum_reference(src, index, dim_size)

"""Neighbour attention (EScAIP, TransIP): each atom's K neighbour tokens attend to each other, with
an additive key bias (log of the cutoff envelope, -inf at padding), K up to 64.

``neighbor_attention(q (N, heads, K, D), k (N, heads, K, D), v (N, heads, K, Dv), bias (N, K), scale)
-> (N, heads, K, Dv)`` = softmax(q k^T scale + bias) v, one (atom, head) per program, the (K, K)
weights kept in registers. Backward: the reference (torch's math attention) recomputed and
differentiated (mlip.kernels.recompute), so it is differentiable again.
"""

from __future__ import annotations

import torch

from mlip.kernels.dispatch import HAS_TRITON, launches, use_triton
from mlip.kernels.recompute import reference_vjp

MAX_NEIGHBORS = 64

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _attention_kernel(q_ptr, k_ptr, v_ptr, bias_ptr, out_ptr, scale_ptr, heads, K, D, DV,
                          BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)  # atom * heads + head
        atom = pid // heads
        rows = tl.arange(0, BLOCK_K)
        d = tl.arange(0, BLOCK_D)
        dv = tl.arange(0, BLOCK_DV)
        row_mask = rows < K
        qk_mask = row_mask[:, None] & (d[None, :] < D)
        q = tl.load(q_ptr + pid * K * D + rows[:, None] * D + d[None, :], mask=qk_mask, other=0.0)
        k = tl.load(k_ptr + pid * K * D + rows[:, None] * D + d[None, :], mask=qk_mask, other=0.0)
        v_mask = row_mask[:, None] & (dv[None, :] < DV)
        v = tl.load(v_ptr + pid * K * DV + rows[:, None] * DV + dv[None, :], mask=v_mask, other=0.0)
        bias = tl.load(bias_ptr + atom * K + rows, mask=row_mask, other=float("-inf"))
        scale = tl.load(scale_ptr)
        logits = tl.dot(q, tl.trans(k)) * scale + bias[None, :]
        top = tl.max(logits, axis=1)
        weights = tl.exp(logits - top[:, None])
        weights = weights / tl.sum(weights, axis=1)[:, None]
        out = tl.dot(weights.to(v.dtype), v)
        tl.store(out_ptr + pid * K * DV + rows[:, None] * DV + dv[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=v_mask)


def neighbor_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                                 scale: float) -> torch.Tensor:
    """The torch reference: math attention (its backward is differentiable)."""
    mask = bias.to(q.dtype)[:, None, None, :]
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, mask, 0.0, False, None, scale=scale)[0]


def _block(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _launch(q, k, v, bias, scale: float):
    launches["neighbor_attention"] += 1
    n, heads, slots, dim = q.shape
    dv = v.shape[-1]
    if slots > MAX_NEIGHBORS + 1:
        raise ValueError(f"the neighbour-attention kernel takes at most {MAX_NEIGHBORS} neighbours (+ the atom "
                         f"itself); got {slots - 1}: cap them with max_neighbors")
    out = q.new_empty(n, heads, slots, dv)
    if n == 0 or heads == 0:
        return out
    scale_t = torch.tensor([scale], dtype=q.dtype, device=q.device)
    _attention_kernel[(n * heads,)](q.contiguous(), k.contiguous(), v.contiguous(), bias.to(q.dtype).contiguous(),
                                    out, scale_t, heads, slots, dim, dv, BLOCK_K=_block(slots),
                                    BLOCK_D=_block(dim), BLOCK_DV=_block(dv))
    return out


class _NeighborAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, bias, scale: float):
        ctx.save_for_backward(q, k, v, bias)
        ctx.scale = scale
        return _launch(q, k, v, bias, scale)

    @staticmethod
    def backward(ctx, grad):
        def reference(q, k, v, bias):
            return neighbor_attention_reference(q, k, v, bias, ctx.scale)

        return tuple(reference_vjp(reference, ctx.saved_tensors, ctx.needs_input_grad[:4], grad)) + (None,)


def neighbor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                       scale: float) -> torch.Tensor:
    """softmax(q k^T scale + bias) v over each atom's neighbour slots; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(q):
            return _NeighborAttention.apply(q, k, v, bias, float(scale))
    return neighbor_attention_reference(q, k, v, bias, scale)

"""Neighbour attention (EScAIP, TransIP): each atom's K neighbour tokens attend to each other, with
an additive key bias (log of the cutoff envelope, -inf at padding), any K.

``neighbor_attention(q (N, heads, K, D), k (N, heads, K, D), v (N, heads, K, Dv), bias (N, K), scale)
-> (N, heads, K, Dv)`` = softmax(q k^T scale + bias) v.

Forward kernel: flash-attention tiling, one program per (atom, head, block of query slots, block of
value channels): key slots in blocks with a running softmax (its log-sum-exp kept for the
backward), query/key channels summed in blocks, so no neighbour count or head size is too large and
the (K, K) weights never reach memory. Backward kernels (the gradient for q, k, v and the bias, what
forces need): the weights recomputed block by block from the saved log-sum-exp, one kernel for the
key side (dk, dv, the bias) and one for the query side (dq), no atomics. The double backward
(training on forces) is the reference's (torch's math attention), recomputed and differentiated
(mlip.kernels.recompute).
"""

from __future__ import annotations

import torch

from mlip.kernels.dispatch import HAS_TRITON, use_triton
from mlip.kernels.launch import block_size, dot_precision, launch, num_warps_for
from mlip.kernels.recompute import reference_vjp, wanted_gradients

MAX_BLOCK_SLOTS = 32  # query and key slots of one tile
MAX_BLOCK_DIM = 64  # channels of one tile

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _logits(q_base, k_base, bias_base, rows, cols, K, D, scale,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        """(BLOCK_M, BLOCK_N): q k^T scale + bias for query slots ``rows`` and key slots ``cols``."""
        logits = tl.zeros([BLOCK_M, BLOCK_N], dtype=q_base.dtype.element_ty)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + tl.arange(0, BLOCK_D)
            q = tl.load(q_base + rows[:, None] * D + d[None, :], mask=(rows[:, None] < K) & (d[None, :] < D), other=0.0)
            k = tl.load(k_base + cols[:, None] * D + d[None, :], mask=(cols[:, None] < K) & (d[None, :] < D), other=0.0)
            logits += tl.dot(q, tl.trans(k), input_precision=PRECISION)
        bias = tl.load(bias_base + cols, mask=cols < K, other=float("-inf"))
        return logits * scale + bias[None, :]

    @triton.jit
    def _weights_and_grads(q_base, k_base, v_base, bias_base, grad_base, lse_base, delta_base, rows, cols, K, D, DV,
                           scale, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                           PRECISION: tl.constexpr):
        """The attention weights p and the logit gradients ds = p (grad v^T - delta), (BLOCK_M, BLOCK_N)."""
        logits = _logits(q_base, k_base, bias_base, rows, cols, K, D, scale, BLOCK_M, BLOCK_N, BLOCK_D, PRECISION)
        lse = tl.load(lse_base + rows, mask=rows < K, other=float("inf"))
        p = tl.exp(logits - lse[:, None])
        dp = tl.zeros([BLOCK_M, BLOCK_N], dtype=q_base.dtype.element_ty)
        for d0 in range(0, DV, BLOCK_D):
            d = d0 + tl.arange(0, BLOCK_D)
            g = tl.load(grad_base + rows[:, None] * DV + d[None, :], mask=(rows[:, None] < K) & (d[None, :] < DV),
                        other=0.0)
            v = tl.load(v_base + cols[:, None] * DV + d[None, :], mask=(cols[:, None] < K) & (d[None, :] < DV),
                        other=0.0)
            dp += tl.dot(g, tl.trans(v), input_precision=PRECISION)
        delta = tl.load(delta_base + rows, mask=rows < K, other=0.0)
        return p, p * (dp - delta[:, None])

    @triton.jit
    def _attention_kernel(q_ptr, k_ptr, v_ptr, bias_ptr, scale_ptr, out_ptr, lse_ptr, heads, K, D, DV,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                          BLOCK_DV: tl.constexpr, PRECISION: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)  # atom * heads + head
        atom = pid // heads
        rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        dv = tl.program_id(2) * BLOCK_DV + tl.arange(0, BLOCK_DV)
        scale = tl.load(scale_ptr)
        top = tl.full([BLOCK_M], float("-inf"), dtype=q_ptr.dtype.element_ty)
        total = tl.zeros([BLOCK_M], dtype=q_ptr.dtype.element_ty)
        acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=q_ptr.dtype.element_ty)
        for n0 in range(0, K, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            logits = _logits(q_ptr + pid * K * D, k_ptr + pid * K * D, bias_ptr + atom * K, rows, cols, K, D, scale,
                             BLOCK_M, BLOCK_N, BLOCK_D, PRECISION)
            new_top = tl.maximum(top, tl.max(logits, axis=1))
            safe_top = tl.where(new_top == float("-inf"), 0.0, new_top)  # a block of padding only
            rescale = tl.exp(top - safe_top)
            p = tl.exp(logits - safe_top[:, None])
            total = total * rescale + tl.sum(p, axis=1)
            v = tl.load(v_ptr + pid * K * DV + cols[:, None] * DV + dv[None, :],
                        mask=(cols[:, None] < K) & (dv[None, :] < DV), other=0.0)
            acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            top = new_top
        row_mask = rows < K
        tl.store(out_ptr + pid * K * DV + rows[:, None] * DV + dv[None, :],
                 (acc / total[:, None]).to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & (dv[None, :] < DV))
        if tl.program_id(2) == 0:
            tl.store(lse_ptr + pid * K + rows, top + tl.log(total), mask=row_mask)

    @triton.jit
    def _attention_key_grads_kernel(q_ptr, k_ptr, v_ptr, bias_ptr, scale_ptr, grad_ptr, lse_ptr, delta_ptr,
                                    dk_ptr, dv_ptr, dbias_ptr, heads, K, D, DV,
                                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                                    PRECISION: tl.constexpr):
        """Program (atom * heads + head, key block, column block): column block j < cdiv(D) writes
        dk[:, j], the others dv[:, j - cdiv(D)]; column block 0 also writes the bias gradient of this head."""
        pid = tl.program_id(0).to(tl.int64)
        atom = pid // heads
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        column_block = tl.program_id(2)
        d_blocks = tl.cdiv(D, BLOCK_D)
        is_key = column_block < d_blocks
        width = tl.where(is_key, D, DV)
        d = tl.where(is_key, column_block, column_block - d_blocks) * BLOCK_D + tl.arange(0, BLOCK_D)
        scale = tl.load(scale_ptr)
        q_base, k_base, v_base = q_ptr + pid * K * D, k_ptr + pid * K * D, v_ptr + pid * K * DV
        grad_base = grad_ptr + pid * K * DV
        acc = tl.zeros([BLOCK_N, BLOCK_D], dtype=q_ptr.dtype.element_ty)
        dbias = tl.zeros([BLOCK_N], dtype=q_ptr.dtype.element_ty)
        for m0 in range(0, K, BLOCK_M):
            rows = m0 + tl.arange(0, BLOCK_M)
            p, ds = _weights_and_grads(q_base, k_base, v_base, bias_ptr + atom * K, grad_base, lse_ptr + pid * K,
                                       delta_ptr + pid * K, rows, cols, K, D, DV, scale, BLOCK_M, BLOCK_N, BLOCK_D,
                                       PRECISION)
            mask = (rows[:, None] < K) & (d[None, :] < width)
            if is_key:
                q = tl.load(q_base + rows[:, None] * D + d[None, :], mask=mask, other=0.0)
                acc += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION) * scale
            else:
                g = tl.load(grad_base + rows[:, None] * DV + d[None, :], mask=mask, other=0.0)
                acc += tl.dot(tl.trans(p.to(g.dtype)), g, input_precision=PRECISION)
            dbias += tl.sum(ds, axis=0)
        out_mask = (cols[:, None] < K) & (d[None, :] < width)
        if is_key:
            tl.store(dk_ptr + pid * K * D + cols[:, None] * D + d[None, :], acc.to(dk_ptr.dtype.element_ty),
                     mask=out_mask)
        else:
            tl.store(dv_ptr + pid * K * DV + cols[:, None] * DV + d[None, :], acc.to(dv_ptr.dtype.element_ty),
                     mask=out_mask)
        if column_block == 0:
            tl.store(dbias_ptr + pid * K + cols, dbias.to(dbias_ptr.dtype.element_ty), mask=cols < K)

    @triton.jit
    def _attention_query_grads_kernel(q_ptr, k_ptr, v_ptr, bias_ptr, scale_ptr, grad_ptr, lse_ptr, delta_ptr, dq_ptr,
                                      heads, K, D, DV, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                      BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        """Program (atom * heads + head, query block, channel block): dq = scale ds k."""
        pid = tl.program_id(0).to(tl.int64)
        atom = pid // heads
        rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
        scale = tl.load(scale_ptr)
        k_base = k_ptr + pid * K * D
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=q_ptr.dtype.element_ty)
        for n0 in range(0, K, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            p, ds = _weights_and_grads(q_ptr + pid * K * D, k_base, v_ptr + pid * K * DV, bias_ptr + atom * K,
                                       grad_ptr + pid * K * DV, lse_ptr + pid * K, delta_ptr + pid * K, rows, cols,
                                       K, D, DV, scale, BLOCK_M, BLOCK_N, BLOCK_D, PRECISION)
            k = tl.load(k_base + cols[:, None] * D + d[None, :], mask=(cols[:, None] < K) & (d[None, :] < D), other=0.0)
            acc += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION) * scale
        tl.store(dq_ptr + pid * K * D + rows[:, None] * D + d[None, :], acc.to(dq_ptr.dtype.element_ty),
                 mask=(rows[:, None] < K) & (d[None, :] < D))


def neighbor_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                                 scale: float) -> torch.Tensor:
    """The torch reference: math attention (its backward is differentiable)."""
    mask = bias.to(q.dtype)[:, None, None, :]
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, mask, 0.0, False, None, scale=scale)[0]


def _reference_with_lse(q, k, v, bias, scale: float):
    logits = torch.einsum("nhid,nhjd->nhij", q, k) * scale + bias.to(q.dtype)[:, None, None, :]
    return torch.softmax(logits, dim=-1) @ v, torch.logsumexp(logits, dim=-1)


def _blocks(slots: int, dim: int, dv: int):
    return block_size(slots, MAX_BLOCK_SLOTS), block_size(dim, MAX_BLOCK_DIM), block_size(dv, MAX_BLOCK_DIM)


def _launch(q, k, v, bias, scale: float):
    n, heads, slots, dim = q.shape
    dv = v.shape[-1]
    out = q.new_empty(n, heads, slots, dv)
    lse = q.new_empty(n, heads, slots)
    if out.numel() == 0:
        return out, lse.fill_(0.0)
    q, k, v, bias = q.contiguous(), k.contiguous(), v.contiguous(), bias.to(q.dtype).contiguous()
    scale_t = torch.tensor([scale], dtype=q.dtype, device=q.device)
    block_k, block_d, block_dv = _blocks(slots, dim, dv)

    def fallback():
        o, l = _reference_with_lse(q, k, v, bias, scale)
        out.copy_(o), lse.copy_(l)

    launch("neighbor_attention", _attention_kernel, (n * heads, triton.cdiv(slots, block_k), triton.cdiv(dv, block_dv)),
           (q, k, v, bias, scale_t, out, lse, heads, slots, dim, dv),
           dict(BLOCK_M=block_k, BLOCK_N=block_k, BLOCK_D=block_d, BLOCK_DV=block_dv,
                PRECISION=dot_precision(q.dtype)), fallback, num_warps=num_warps_for(block_k * max(block_d, block_dv)))
    return out, lse


def _launch_backward(q, k, v, bias, grad, out, lse, scale: float):
    """(dq, dk, dv, dbias) of <attention(q, k, v, bias), grad>."""
    n, heads, slots, dim = q.shape
    dv_dim = v.shape[-1]
    bias_dtype = bias.dtype
    dq, dk, dv = (torch.empty_like(t, memory_format=torch.contiguous_format) for t in (q, k, v))  # kernel layout
    dbias_heads = q.new_empty(n, heads, slots)
    if q.numel() == 0 or dv.numel() == 0:
        return dq.zero_(), dk.zero_(), dv.zero_(), dbias_heads.zero_().sum(1).to(bias_dtype)
    q, k, v, bias = q.contiguous(), k.contiguous(), v.contiguous(), bias.to(q.dtype).contiguous()
    grad = grad.to(q.dtype).contiguous()
    delta = (grad * out).sum(-1).contiguous()  # (N, heads, K): rowsum of grad * out
    scale_t = torch.tensor([scale], dtype=q.dtype, device=q.device)
    block_k, block_d, _ = _blocks(slots, max(dim, dv_dim), dv_dim)
    constexprs = dict(BLOCK_M=block_k, BLOCK_N=block_k, BLOCK_D=block_d, PRECISION=dot_precision(q.dtype))
    slot_blocks = triton.cdiv(slots, block_k)
    warps = num_warps_for(block_k * block_d)

    reference: list = []

    def reference_grads():  # computed once, for whichever fallback asks first
        if not reference:
            reference.extend(_reference_grads(q, k, v, bias, grad, scale))
        return reference

    def keys_fallback():
        dk.copy_(reference_grads()[1]), dv.copy_(reference_grads()[2])
        dbias_heads.zero_()[:, 0].copy_(reference_grads()[3])

    common = (q, k, v, bias, scale_t, grad, lse, delta)
    launch("neighbor_attention_backward", _attention_key_grads_kernel,
           (n * heads, slot_blocks, triton.cdiv(dim, block_d) + triton.cdiv(dv_dim, block_d)),
           (*common, dk, dv, dbias_heads, heads, slots, dim, dv_dim), constexprs, keys_fallback, warps)
    launch("neighbor_attention_backward", _attention_query_grads_kernel,
           (n * heads, slot_blocks, triton.cdiv(dim, block_d)), (*common, dq, heads, slots, dim, dv_dim), constexprs,
           lambda: dq.copy_(reference_grads()[0]), warps)
    return dq, dk, dv, dbias_heads.sum(1).to(bias_dtype)


class _NeighborAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, bias, scale: float):
        out, lse = _launch(q, k, v, bias, scale)
        ctx.save_for_backward(q, k, v, bias, out)
        ctx.lse, ctx.scale = lse, scale
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, bias, out = ctx.saved_tensors
        wanted = wanted_gradients(ctx, (q, k, v, bias))
        if not any(wanted):
            return None, None, None, None, None
        grads = _NeighborAttentionBackward.apply(q, k, v, bias, grad, out.detach(), ctx.lse, ctx.scale)
        return tuple(g if w else None for g, w in zip(grads, wanted)) + (None,)


def _reference_grads(q, k, v, bias, grad, scale: float):
    return tuple(reference_vjp(lambda *x: neighbor_attention_reference(*x, scale), (q, k, v, bias), (True,) * 4, grad))


class _NeighborAttentionBackward(torch.autograd.Function):
    """(q, k, v, bias, grad) -> (dq, dk, dv, dbias) by the fused kernels; its own backward (the double
    backward of training on forces) is the reference's, recomputed."""

    @staticmethod
    def forward(ctx, q, k, v, bias, grad, out, lse, scale: float):
        ctx.save_for_backward(q, k, v, bias, grad)
        ctx.scale = scale
        return _launch_backward(q, k, v, bias, grad, out, lse, scale)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        cotangents = tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, saved))
        result = reference_vjp(lambda *x: _reference_grads(*x, ctx.scale), saved, wanted_gradients(ctx, saved),
                               cotangents)
        return tuple(result) + (None, None, None)


def neighbor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                       scale: float) -> torch.Tensor:
    """softmax(q k^T scale + bias) v over each atom's neighbour slots; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(q):
            return _NeighborAttention.apply(q, k, v, bias, float(scale))
    return neighbor_attention_reference(q, k, v, bias, scale)

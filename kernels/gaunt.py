"""Gaunt edge product: the 2D convolution of a node's and an edge's Fourier grids fused with the
projection back onto the harmonics, without the (edges, channels, grid, grid) intermediates.

``gaunt_edge_product(x (N, C, 2, A), source (E,), y (E, H, 2, B), proj (S, 2, G*G)) -> (E, S, C)``:

    out[e, s, c] = Re sum_{a, b} X[source[e], c, a] Y[e, h(c), b] P[s, q(a, b)]

with complex grids stored as (real, imaginary) planes: X the node features' 2D Fourier
coefficients on an n1 x n1 grid (A = n1^2, frequency u + L1 at row u), Y the edge's weighted
harmonics on n2 x n2 (B = n2^2), one per head (channel c belongs to head c // (C / H)),
P the projection of the product grid G x G (G = n1 + n2 - 1, mlip.nn.gaunt.fourier_projection)
onto the output harmonics, q(a, b) = (i + k) G + (j + l) for a = (i, j), b = (k, l).

The kernel first builds each edge's map N[s, a] = sum_b Y[b] P[s, q(a, b)] (one per edge and
head, shared by its channels: the convolution and the projection in one pass), then applies it to
the channels by a product of tiles, out = Re(X N^T), reading X at the edge's source (no gathered
copy). Memory: the output only, where the torch route keeps grids of (E, C, G, G) complex numbers.

Gradients (complex gradients are dL/dRe + i dL/dIm, what the planes' autograd gives):
    dX[e, c, a] = sum_s g[e, s, c] conj(N[s, a])              (per edge, then summed onto the source)
    dY[e, h, b] = sum_{c in h, s, a} g[e, s, c] conj(X[c, a] P[s, q(a, b)])
The three maps (product, X-gradient, Y-gradient) are bilinear and each one's adjoints are the
others, so every derivative order runs on the kernels.
"""

from __future__ import annotations

import math

import torch

from mlip.kernels.dispatch import HAS_TRITON, use_triton
from mlip.kernels.launch import block_size, dot_precision, launch, num_warps_for
from mlip.kernels.segment_sum import segment_sum

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _edge_map(y_ptr, y_base, p_ptr, s, a, n1, n2, A, B, S, FP64: tl.constexpr, BLOCK_S: tl.constexpr,
                  BLOCK_A: tl.constexpr):
        """(N real, N imaginary) (BLOCK_S, BLOCK_A) for the coefficients a of one edge and head."""
        gw = n1 + n2 - 1
        g2 = gw * gw
        i = a // n1
        j = a % n1
        mask = (s < S)[:, None] & (a < A)[None, :]
        if FP64:
            nr = tl.zeros([BLOCK_S, BLOCK_A], dtype=tl.float64)
        else:
            nr = tl.zeros([BLOCK_S, BLOCK_A], dtype=tl.float32)
        ni = nr
        for b in range(0, B):
            k = b // n2
            l = b % n2
            yr = tl.load(y_ptr + y_base + b).to(nr.dtype)
            yi = tl.load(y_ptr + y_base + B + b).to(nr.dtype)
            offset = s[:, None] * 2 * g2 + ((i + k) * gw + (j + l))[None, :]
            pr = tl.load(p_ptr + offset, mask=mask, other=0.0).to(nr.dtype)
            pi = tl.load(p_ptr + offset + g2, mask=mask, other=0.0).to(nr.dtype)
            nr += yr * pr - yi * pi
            ni += yr * pi + yi * pr
        return nr, ni

    @triton.jit
    def _gaunt_edge_kernel(x_ptr, src_ptr, y_ptr, p_ptr, out_ptr, channels, per_head, heads, n1, n2, A, B, S,
                           FP64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_A: tl.constexpr,
                           PRECISION: tl.constexpr):
        """out[e, s, c] for one edge, one head and a block of its channels."""
        e = tl.program_id(0).to(tl.int64)
        h = tl.program_id(1)
        local = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        cmask = local < per_head
        c = h * per_head + local
        s = tl.arange(0, BLOCK_S)
        node = tl.load(src_ptr + e).to(tl.int64)
        y_base = (e * heads + h) * 2 * B
        if FP64:
            acc = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float64)
        else:
            acc = tl.zeros([BLOCK_C, BLOCK_S], dtype=tl.float32)
        for a0 in range(0, A, BLOCK_A):
            a = a0 + tl.arange(0, BLOCK_A)
            nr, ni = _edge_map(y_ptr, y_base, p_ptr, s, a, n1, n2, A, B, S, FP64, BLOCK_S, BLOCK_A)
            x_offset = (node * channels + c)[:, None] * 2 * A + a[None, :]
            x_mask = cmask[:, None] & (a < A)[None, :]
            xr = tl.load(x_ptr + x_offset, mask=x_mask, other=0.0).to(acc.dtype)
            xi = tl.load(x_ptr + x_offset + A, mask=x_mask, other=0.0).to(acc.dtype)
            acc += tl.dot(xr, tl.trans(nr), input_precision=PRECISION)
            acc -= tl.dot(xi, tl.trans(ni), input_precision=PRECISION)
        out_offset = e * S * channels + s[None, :] * channels + c[:, None]
        tl.store(out_ptr + out_offset, acc.to(out_ptr.dtype.element_ty), mask=cmask[:, None] & (s < S)[None, :])

    @triton.jit
    def _gaunt_edge_x_grad_kernel(g_ptr, y_ptr, p_ptr, out_ptr, channels, per_head, heads, n1, n2, A, B, S,
                                  FP64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                                  BLOCK_A: tl.constexpr, PRECISION: tl.constexpr):
        """out[e, c, :, a] = sum_s g[e, s, c] conj(N[s, a]), per edge (not yet summed onto nodes)."""
        e = tl.program_id(0).to(tl.int64)
        h = tl.program_id(1)
        local = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        cmask = local < per_head
        c = h * per_head + local
        s = tl.arange(0, BLOCK_S)
        y_base = (e * heads + h) * 2 * B
        grad = tl.load(g_ptr + e * S * channels + s[None, :] * channels + c[:, None],
                       mask=cmask[:, None] & (s < S)[None, :], other=0.0)
        if FP64:
            grad = grad.to(tl.float64)
        else:
            grad = grad.to(tl.float32)
        for a0 in range(0, A, BLOCK_A):
            a = a0 + tl.arange(0, BLOCK_A)
            nr, ni = _edge_map(y_ptr, y_base, p_ptr, s, a, n1, n2, A, B, S, FP64, BLOCK_S, BLOCK_A)
            gr = tl.dot(grad, nr, input_precision=PRECISION)
            gi = -tl.dot(grad, ni, input_precision=PRECISION)
            offset = (e * channels + c)[:, None] * 2 * A + a[None, :]
            mask = cmask[:, None] & (a < A)[None, :]
            tl.store(out_ptr + offset, gr.to(out_ptr.dtype.element_ty), mask=mask)
            tl.store(out_ptr + offset + A, gi.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _gaunt_edge_y_grad_kernel(g_ptr, x_ptr, src_ptr, p_ptr, out_ptr, channels, per_head, heads, n1, n2, A, B, S,
                                  FP64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
                                  BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, PRECISION: tl.constexpr):
        """out[e, h, :, b] = sum over the head's channels, s and a of g[e, s, c] conj(X[c, a] P[s, q(a, b)])."""
        e = tl.program_id(0).to(tl.int64)
        h = tl.program_id(1)
        s = tl.arange(0, BLOCK_S)
        bs = tl.arange(0, BLOCK_B)
        node = tl.load(src_ptr + e).to(tl.int64)
        gw = n1 + n2 - 1
        g2 = gw * gw
        if FP64:
            out_r = tl.zeros([BLOCK_B], dtype=tl.float64)
        else:
            out_r = tl.zeros([BLOCK_B], dtype=tl.float32)
        out_i = out_r
        for a0 in range(0, A, BLOCK_A):
            a = a0 + tl.arange(0, BLOCK_A)
            i = a // n1
            j = a % n1
            amask = a < A
            # W[s, a] = sum over the head's channels of g[s, c] conj(X[c, a])
            if FP64:
                wr = tl.zeros([BLOCK_S, BLOCK_A], dtype=tl.float64)
            else:
                wr = tl.zeros([BLOCK_S, BLOCK_A], dtype=tl.float32)
            wi = wr
            for c0 in range(0, per_head, BLOCK_C):
                local = c0 + tl.arange(0, BLOCK_C)
                cmask = local < per_head
                c = h * per_head + local
                grad = tl.load(g_ptr + e * S * channels + s[None, :] * channels + c[:, None],
                               mask=cmask[:, None] & (s < S)[None, :], other=0.0).to(wr.dtype)
                x_offset = (node * channels + c)[:, None] * 2 * A + a[None, :]
                x_mask = cmask[:, None] & amask[None, :]
                xr = tl.load(x_ptr + x_offset, mask=x_mask, other=0.0).to(wr.dtype)
                xi = tl.load(x_ptr + x_offset + A, mask=x_mask, other=0.0).to(wr.dtype)
                wr += tl.dot(tl.trans(grad), xr, input_precision=PRECISION)
                wi -= tl.dot(tl.trans(grad), xi, input_precision=PRECISION)
            mask = (s < S)[:, None] & amask[None, :]
            for b in range(0, B):
                k = b // n2
                l = b % n2
                offset = s[:, None] * 2 * g2 + ((i + k) * gw + (j + l))[None, :]
                pr = tl.load(p_ptr + offset, mask=mask, other=0.0).to(wr.dtype)
                pi = tl.load(p_ptr + offset + g2, mask=mask, other=0.0).to(wr.dtype)
                re = tl.sum(tl.sum(wr * pr + wi * pi, axis=1), axis=0)
                im = tl.sum(tl.sum(wi * pr - wr * pi, axis=1), axis=0)
                out_r = tl.where(bs == b, out_r + re, out_r)
                out_i = tl.where(bs == b, out_i + im, out_i)
        base = (e * heads + h) * 2 * B
        tl.store(out_ptr + base + bs, out_r.to(out_ptr.dtype.element_ty), mask=bs < B)
        tl.store(out_ptr + base + B + bs, out_i.to(out_ptr.dtype.element_ty), mask=bs < B)


def _sizes(x: torch.Tensor, y: torch.Tensor):
    a, b = x.shape[-1], y.shape[-1]
    n1, n2 = math.isqrt(a), math.isqrt(b)
    if n1 * n1 != a or n2 * n2 != b:
        raise ValueError(f"gaunt_edge_product: grids of {a} and {b} entries are not square")
    return n1, n2


def _complex(planes: torch.Tensor) -> torch.Tensor:
    return torch.complex(planes.select(-2, 0), planes.select(-2, 1))


def gaunt_edge_product_reference(x: torch.Tensor, source: torch.Tensor, y: torch.Tensor,
                                 proj: torch.Tensor) -> torch.Tensor:
    """The torch reference: gather, 2D convolution by FFT, projection (mlip.nn.gaunt's route)."""
    n1, n2 = _sizes(x, y)
    gw = n1 + n2 - 1
    edges, heads = y.shape[0], y.shape[1]
    channels, s_out = x.shape[1], proj.shape[0]
    if edges == 0:  # MKL's FFT refuses empty batches; zeros that stay in the graph
        return x.new_zeros(0, s_out, channels) + 0.0 * (x.sum() + y.sum())
    fx = _complex(x).index_select(0, source).reshape(edges, heads, channels // heads, n1, n1)
    fy = _complex(y).reshape(edges, heads, 1, n2, n2)
    grid = [gw, gw]
    z = torch.fft.ifft2(torch.fft.fft2(fx, s=grid) * torch.fft.fft2(fy, s=grid))
    p = _complex(proj).reshape(s_out, gw, gw)
    out = torch.einsum("ehcpq,spq->eshc", z, p).real
    return out.reshape(edges, s_out, channels)


def _grid(edges: int, heads: int, per_head: int, block_c: int):
    return (edges, heads, triton.cdiv(per_head, block_c))


def _blocks(per_head: int, a: int, s: int, tile: int = 4096):
    """(BLOCK_C, BLOCK_S, BLOCK_A): every output harmonic in one tile, the coefficients in chunks of
    at most ``tile`` / BLOCK_S (no register spills on sm_80/sm_90 at lmax 2-6: tests/kernels/test_compile.py)."""
    block_s = block_size(s, 1024)
    block_a = min(block_size(a, 64), max(16, tile // block_s))
    return block_size(per_head, 32), block_s, block_a


def _launch_product(x, source, y, proj):
    n1, n2 = _sizes(x, y)
    edges, heads = y.shape[0], y.shape[1]
    channels, s_out, a, b = x.shape[1], proj.shape[0], x.shape[-1], y.shape[-1]
    out = x.new_empty(edges, s_out, channels)
    if edges == 0 or channels == 0:
        return out.zero_()
    per_head = channels // heads
    block_c, block_s, block_a = _blocks(per_head, a, s_out)
    launch("gaunt_edge", _gaunt_edge_kernel, _grid(edges, heads, per_head, block_c),
           (x.contiguous(), source.contiguous(), y.contiguous(), proj.contiguous(), out, channels, per_head, heads,
            n1, n2, a, b, s_out),
           dict(FP64=x.dtype == torch.float64, BLOCK_C=block_c, BLOCK_S=block_s, BLOCK_A=block_a,
                PRECISION=dot_precision(x.dtype)),
           lambda: out.copy_(gaunt_edge_product_reference(x, source, y, proj)),
           num_warps=num_warps_for(block_s * block_a))
    return out


def _x_grad_reference(grad, y, proj, a: int):
    edges, channels = grad.shape[0], grad.shape[2]
    planes = torch.zeros(edges, channels, 2, a, dtype=grad.dtype, device=grad.device, requires_grad=True)
    with torch.enable_grad():
        out = gaunt_edge_product_reference(planes, torch.arange(edges, device=grad.device), y.detach(), proj)
        return torch.autograd.grad(out, planes, grad)[0]


def _launch_x_grad(grad, y, proj, a: int):
    """Per-edge gradient for X, (E, C, 2, A)."""
    n2 = math.isqrt(y.shape[-1])
    n1 = math.isqrt(a)
    edges, heads, channels = y.shape[0], y.shape[1], grad.shape[2]
    s_out, b = proj.shape[0], y.shape[-1]
    out = grad.new_empty(edges, channels, 2, a)
    if edges == 0 or channels == 0:
        return out.zero_()
    per_head = channels // heads
    block_c, block_s, block_a = _blocks(per_head, a, s_out)
    launch("gaunt_edge_x_grad", _gaunt_edge_x_grad_kernel, _grid(edges, heads, per_head, block_c),
           (grad.contiguous(), y.contiguous(), proj.contiguous(), out, channels, per_head, heads, n1, n2, a, b, s_out),
           dict(FP64=grad.dtype == torch.float64, BLOCK_C=block_c, BLOCK_S=block_s, BLOCK_A=block_a,
                PRECISION=dot_precision(grad.dtype)),
           lambda: out.copy_(_x_grad_reference(grad, y, proj, a)),
           num_warps=num_warps_for(block_s * block_a))
    return out


def _y_grad_reference(grad, x, source, proj, heads: int, b: int):
    edges = grad.shape[0]
    planes = torch.zeros(edges, heads, 2, b, dtype=grad.dtype, device=grad.device, requires_grad=True)
    with torch.enable_grad():
        out = gaunt_edge_product_reference(x.detach(), source, planes, proj)
        return torch.autograd.grad(out, planes, grad)[0]


def _launch_y_grad(grad, x, source, proj, heads: int, b: int):
    """Gradient for Y, (E, H, 2, B)."""
    n1, n2 = math.isqrt(x.shape[-1]), math.isqrt(b)
    edges, channels = grad.shape[0], grad.shape[2]
    s_out, a = proj.shape[0], x.shape[-1]
    out = grad.new_empty(edges, heads, 2, b)
    if edges == 0 or channels == 0:
        return out.zero_()
    per_head = channels // heads
    block_c, block_s, block_a = _blocks(per_head, a, s_out, tile=2048)  # W's two tiles and the gathered P's two
    launch("gaunt_edge_y_grad", _gaunt_edge_y_grad_kernel, (edges, heads),
           (grad.contiguous(), x.contiguous(), source.contiguous(), proj.contiguous(), out, channels, per_head, heads,
            n1, n2, a, b, s_out),
           dict(FP64=grad.dtype == torch.float64, BLOCK_C=block_c, BLOCK_S=block_s, BLOCK_A=block_a,
                BLOCK_B=block_size(b, 1024), PRECISION=dot_precision(grad.dtype)),
           lambda: out.copy_(_y_grad_reference(grad, x, source, proj, heads, b)),
           num_warps=num_warps_for(block_s * block_a))
    return out


def _edge_index(edges: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(edges, device=like.device)


class _Product(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, source, y, proj):
        ctx.save_for_backward(x, source, y, proj)
        return _launch_product(x, source, y, proj)

    @staticmethod
    def backward(ctx, grad):
        x, source, y, proj = ctx.saved_tensors
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = segment_sum(_XGrad.apply(grad, y, proj, x.shape[-1]), source, x.shape[0])
        if ctx.needs_input_grad[2]:
            grad_y = _YGrad.apply(grad, x, source, proj, y.shape[1], y.shape[-1])
        return grad_x, None, grad_y, None


class _XGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, y, proj, a: int):
        ctx.save_for_backward(grad, y, proj)
        return _launch_x_grad(grad, y, proj, a)

    @staticmethod
    def backward(ctx, upstream):
        grad, y, proj = ctx.saved_tensors
        edges = _edge_index(grad.shape[0], grad)
        d_grad = _Product.apply(upstream, edges, y, proj) if ctx.needs_input_grad[0] else None
        d_y = _YGrad.apply(grad, upstream, edges, proj, y.shape[1], y.shape[-1]) if ctx.needs_input_grad[1] else None
        return d_grad, d_y, None, None


class _YGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, x, source, proj, heads: int, b: int):
        ctx.save_for_backward(grad, x, source, proj)
        return _launch_y_grad(grad, x, source, proj, heads, b)

    @staticmethod
    def backward(ctx, upstream):
        grad, x, source, proj = ctx.saved_tensors
        d_grad = _Product.apply(x, source, upstream, proj) if ctx.needs_input_grad[0] else None
        d_x = None
        if ctx.needs_input_grad[1]:
            d_x = segment_sum(_XGrad.apply(grad, upstream, proj, x.shape[-1]), source, x.shape[0])
        return d_grad, d_x, None, None, None, None


def gaunt_edge_product(x: torch.Tensor, source: torch.Tensor, y: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """(N, C, 2, A), (E,), (E, H, 2, B), (S, 2, G*G) -> (E, S, C): every edge's Gaunt product of its
    source's features with its harmonics, projected onto the output harmonics; Triton or reference."""
    if not torch.jit.is_scripting():
        if use_triton(x):
            return _Product.apply(x, source, y, proj)
    return gaunt_edge_product_reference(x, source, y, proj)

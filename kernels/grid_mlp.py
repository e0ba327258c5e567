"""The spherical-grid node update of Facet and eSCN, fused: projection to the grid points, the
pointwise channel product-MLP and the projection back, so the (N, P, hidden) grid tensor is never
written to memory, neither in the forward nor in the first-order backward (forces).

``grid_mlp(x (N, S, C), to_grid (P, S), from_grid (S, P), left_w (H, C), left_b (H,), right_w (H, C),
right_b (H,), out_w (C_out, H)) -> (N, S, C_out)`` =
from_grid @ [((to_grid @ x) left_w^T + left_b) * ((to_grid @ x) right_w^T + right_b)] out_w^T
(mlip.nn.grid_mlp.GridProductMLP).

Forward kernel: one program per (node, block of output channels); hidden units in blocks of
BLOCK_H, grid points in blocks of BLOCK_P, input channels in blocks of BLOCK_C, so every tile stays
within a GPU's shared memory whatever the preset. Per hidden block it sums
z = from_grid[:, p] hidden[p, h] over the points and adds z @ out_w[:, h]^T.

Backward kernel (the gradient for x, what forces need): dx = to_grid^T [(d b) left_w + (d a) right_w]
with d = (from_grid^T grad) out_w, a and b recomputed block by block; one program per (node, block of
input channels). Weight gradients (training) and the double backward (training on forces) come from
the torch reference, recomputed and differentiated (mlip.kernels.recompute).
"""

from __future__ import annotations

from typing import Optional

import torch

from mlip.kernels.dispatch import HAS_TRITON, get_backend, use_triton
from mlip.kernels.launch import block_size, dot_precision, launch, num_warps_for
from mlip.kernels.recompute import reference_vjp, wanted_gradients

BLOCK_P = 16
BLOCK_H = 32
BLOCK_C = 32  # input channels summed per step
MAX_BLOCK_OUT = 64  # output channels of one program (more: more programs)
GRID_NODES = 64  # atoms per block of the CPU implementation

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _hidden_block(x_ptr, lw_ptr, lb_ptr, rw_ptr, rb_ptr, to_block, s, h, S, C, H,
                      BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr,
                      PRECISION: tl.constexpr):
        """a, b (BLOCK_P, BLOCK_H): the two linear maps of the grid values (to_block @ x) for hidden units h."""
        a = tl.zeros([BLOCK_P, BLOCK_H], dtype=x_ptr.dtype.element_ty)
        b = tl.zeros([BLOCK_P, BLOCK_H], dtype=x_ptr.dtype.element_ty)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            xc = tl.load(x_ptr + s[:, None] * C + c[None, :], mask=(s[:, None] < S) & (c[None, :] < C), other=0.0)
            g = tl.dot(to_block, xc, input_precision=PRECISION)  # grid values, (BLOCK_P, BLOCK_C)
            w_mask = (c[:, None] < C) & (h[None, :] < H)
            left_t = tl.load(lw_ptr + h[None, :] * C + c[:, None], mask=w_mask, other=0.0)  # (BLOCK_C, BLOCK_H)
            right_t = tl.load(rw_ptr + h[None, :] * C + c[:, None], mask=w_mask, other=0.0)
            a += tl.dot(g, left_t, input_precision=PRECISION)
            b += tl.dot(g, right_t, input_precision=PRECISION)
        a += tl.load(lb_ptr + h, mask=h < H, other=0.0)[None, :]
        b += tl.load(rb_ptr + h, mask=h < H, other=0.0)[None, :]
        return a, b

    @triton.jit
    def _grid_mlp_kernel(x_ptr, to_ptr, from_ptr, lw_ptr, lb_ptr, rw_ptr, rb_ptr, ow_ptr, out_ptr,
                         S, P, C, H, CO, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                         BLOCK_H: tl.constexpr, BLOCK_CO: tl.constexpr, PRECISION: tl.constexpr):
        node = tl.program_id(0).to(tl.int64)
        co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
        s = tl.arange(0, BLOCK_S)
        x_node = x_ptr + node * S * C
        acc = tl.zeros([BLOCK_S, BLOCK_CO], dtype=x_ptr.dtype.element_ty)
        for h0 in range(0, H, BLOCK_H):
            h = h0 + tl.arange(0, BLOCK_H)
            z = tl.zeros([BLOCK_S, BLOCK_H], dtype=x_ptr.dtype.element_ty)
            for p0 in range(0, P, BLOCK_P):
                p = p0 + tl.arange(0, BLOCK_P)
                to_block = tl.load(to_ptr + p[:, None] * S + s[None, :], mask=(p[:, None] < P) & (s[None, :] < S),
                                   other=0.0)  # (BLOCK_P, BLOCK_S)
                a, b = _hidden_block(x_node, lw_ptr, lb_ptr, rw_ptr, rb_ptr, to_block, s, h, S, C, H,
                                     BLOCK_P, BLOCK_C, BLOCK_H, PRECISION)
                from_block = tl.load(from_ptr + s[:, None] * P + p[None, :], mask=(s[:, None] < S) & (p[None, :] < P),
                                     other=0.0)  # (BLOCK_S, BLOCK_P); zero at padded points
                z += tl.dot(from_block, a * b, input_precision=PRECISION)
            out_t = tl.load(ow_ptr + co[None, :] * H + h[:, None], mask=(h[:, None] < H) & (co[None, :] < CO),
                            other=0.0)  # (BLOCK_H, BLOCK_CO)
            acc += tl.dot(z, out_t, input_precision=PRECISION)
        tl.store(out_ptr + node * S * CO + s[:, None] * CO + co[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=(s[:, None] < S) & (co[None, :] < CO))

    @triton.jit
    def _grid_mlp_backward_kernel(grad_ptr, x_ptr, to_ptr, from_ptr, lw_ptr, lb_ptr, rw_ptr, rb_ptr, ow_ptr, dx_ptr,
                                  S, P, C, H, CO, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr,
                                  BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_CO: tl.constexpr,
                                  BLOCK_CX: tl.constexpr, PRECISION: tl.constexpr):
        node = tl.program_id(0).to(tl.int64)
        cx = tl.program_id(1) * BLOCK_CX + tl.arange(0, BLOCK_CX)  # the input channels this program writes
        s = tl.arange(0, BLOCK_S)
        x_node = x_ptr + node * S * C
        grad_node = grad_ptr + node * S * CO
        acc = tl.zeros([BLOCK_S, BLOCK_CX], dtype=x_ptr.dtype.element_ty)
        for p0 in range(0, P, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            p_mask = (p[:, None] < P) & (s[None, :] < S)
            to_block = tl.load(to_ptr + p[:, None] * S + s[None, :], mask=p_mask, other=0.0)  # (BLOCK_P, BLOCK_S)
            from_t = tl.load(from_ptr + s[None, :] * P + p[:, None], mask=p_mask, other=0.0)  # (BLOCK_P, BLOCK_S)
            dg = tl.zeros([BLOCK_P, BLOCK_CX], dtype=x_ptr.dtype.element_ty)
            for h0 in range(0, H, BLOCK_H):
                h = h0 + tl.arange(0, BLOCK_H)
                a, b = _hidden_block(x_node, lw_ptr, lb_ptr, rw_ptr, rb_ptr, to_block, s, h, S, C, H,
                                     BLOCK_P, BLOCK_C, BLOCK_H, PRECISION)
                d_hidden = tl.zeros([BLOCK_P, BLOCK_H], dtype=x_ptr.dtype.element_ty)
                for co0 in range(0, CO, BLOCK_CO):
                    co = co0 + tl.arange(0, BLOCK_CO)
                    grad_block = tl.load(grad_node + s[:, None] * CO + co[None, :],
                                         mask=(s[:, None] < S) & (co[None, :] < CO), other=0.0)  # (BLOCK_S, BLOCK_CO)
                    d_out = tl.dot(from_t, grad_block, input_precision=PRECISION)  # (BLOCK_P, BLOCK_CO)
                    out_w = tl.load(ow_ptr + co[:, None] * H + h[None, :], mask=(co[:, None] < CO) & (h[None, :] < H),
                                    other=0.0)  # (BLOCK_CO, BLOCK_H)
                    d_hidden += tl.dot(d_out, out_w, input_precision=PRECISION)
                w_mask = (h[:, None] < H) & (cx[None, :] < C)
                left_w = tl.load(lw_ptr + h[:, None] * C + cx[None, :], mask=w_mask, other=0.0)  # (BLOCK_H, BLOCK_CX)
                right_w = tl.load(rw_ptr + h[:, None] * C + cx[None, :], mask=w_mask, other=0.0)
                dg += tl.dot(d_hidden * b, left_w, input_precision=PRECISION)
                dg += tl.dot(d_hidden * a, right_w, input_precision=PRECISION)
            acc += tl.dot(tl.trans(to_block), dg, input_precision=PRECISION)
        tl.store(dx_ptr + node * S * C + s[:, None] * C + cx[None, :], acc.to(dx_ptr.dtype.element_ty),
                 mask=(s[:, None] < S) & (cx[None, :] < C))


def grid_mlp_reference(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w, inference: bool = False):
    """The torch reference: the grid tensor in full (``inference`` changes nothing here: it picks
    the kernel's implementation)."""
    n, p = x.shape[0], to_grid.shape[0]
    g = torch.einsum("ps,nsc->npc", to_grid, x).reshape(n * p, x.shape[2])  # 2-D: the bias joins the product
    hidden = torch.nn.functional.linear(g, left_w, left_b) * torch.nn.functional.linear(g, right_w, right_b)
    return torch.einsum("sp,npc->nsc", from_grid, torch.nn.functional.linear(hidden, out_w).view(n, p, out_w.shape[0]))


def _cast(x, *weights):
    return [t if t.dtype == x.dtype and t.is_contiguous() else t.to(x.dtype).contiguous() for t in weights]


def _launch(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w):
    n, s, c = x.shape
    p, h, co = to_grid.shape[0], left_w.shape[0], out_w.shape[0]
    out = x.new_empty(n, s, co)
    if n == 0:
        return out
    x = x.contiguous()
    args = _cast(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)
    block_s, block_co = block_size(s, 1024), block_size(co, MAX_BLOCK_OUT)
    launch("grid_mlp", _grid_mlp_kernel, (n, triton.cdiv(co, block_co)), (x, *args, out, s, p, c, h, co),
           dict(BLOCK_S=block_s, BLOCK_P=BLOCK_P, BLOCK_C=block_size(c, BLOCK_C),
                BLOCK_H=block_size(h, BLOCK_H), BLOCK_CO=block_co, PRECISION=dot_precision(x.dtype)),
           lambda: out.copy_(grid_mlp_reference(x, *args)), num_warps=num_warps_for(block_s * block_co))
    return out


def _launch_backward(grad, x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w):
    """dx (N, S, C) for the output gradient ``grad`` (N, S, C_out)."""
    n, s, c = x.shape
    p, h, co = to_grid.shape[0], left_w.shape[0], out_w.shape[0]
    dx = x.new_empty(n, s, c)
    if n == 0:
        return dx
    x, grad = x.contiguous(), grad.to(x.dtype).contiguous()
    args = _cast(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)
    block_s, block_cx = block_size(s, 1024), block_size(c, MAX_BLOCK_OUT)

    def fallback():
        dx.copy_(reference_vjp(grid_mlp_reference, (x, *args), (True,) + (False,) * 7, grad)[0])

    launch("grid_mlp_backward", _grid_mlp_backward_kernel, (n, triton.cdiv(c, block_cx)),
           (grad, x, *args, dx, s, p, c, h, co),
           dict(BLOCK_S=block_s, BLOCK_P=BLOCK_P, BLOCK_C=block_size(c, BLOCK_C),
                BLOCK_H=block_size(h, BLOCK_H), BLOCK_CO=block_size(co, BLOCK_C), BLOCK_CX=block_cx,
                PRECISION=dot_precision(x.dtype)),
           fallback, num_warps=num_warps_for(block_s * block_cx))
    return dx


def _coefficients(x, to_grid, left_w, left_b, right_w, right_b):
    """Both linear maps on the harmonic coefficients: (coefficients (N, S, 2H), both maps' weights
    (2H, C), their biases (2H,) or None where the coefficients hold them). A bias is constant over
    the grid, so where to_grid's first column (the constant harmonic, Y_00) is one value c, bias / c
    on that coefficient puts it in every grid value and the grid needs a plain product (no broadcast
    copy of the bias per block)."""
    n, s, c = x.shape
    both = torch.cat([left_w, right_w])  # (2H, C)
    coefficients = (x.reshape(n * s, c) @ both.t()).view(n, s, both.shape[0])
    bias = torch.cat([left_b, right_b])
    if _bias_folded(to_grid):
        coefficients[:, 0] += bias / to_grid[0, 0]
        return coefficients, both, None
    return coefficients, both, bias


def _bias_folded(to_grid) -> bool:
    constant = to_grid[:, 0]
    return bool((constant == constant[0]).all()) and bool(constant[0] != 0)


def _grid_values(coefficients, to_grid, bias: Optional[torch.Tensor]):
    """(k, S, 2H) coefficients of a block of atoms -> (k, P, 2H) grid values of both linear maps
    (``bias``: None where the coefficients hold it)."""
    if bias is None:
        return torch.matmul(to_grid, coefficients)
    return torch.baddbmm(bias, to_grid.expand(coefficients.shape[0], -1, -1), coefficients)


def _forward_cpu(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w, keep: Optional[list] = None):
    """The CPU implementation of the forward (see the module's docstring); appends _coefficients'
    result to ``keep`` (the backward's, saved rather than recomputed)."""
    n = x.shape[0]
    h = left_w.shape[0]
    to_grid, from_grid, left_w, left_b, right_w, right_b, out_w = _cast(x, to_grid, from_grid, left_w, left_b,
                                                                         right_w, right_b, out_w)
    maps = _coefficients(x, to_grid, left_w, left_b, right_w, right_b)
    if keep is not None:
        keep.append(maps)
    coefficients, _, bias = maps
    back = x.new_empty(n, from_grid.shape[0], h)
    for start in range(0, n, GRID_NODES):
        grid = _grid_values(coefficients[start:start + GRID_NODES], to_grid, bias)  # (k, P, 2H)
        torch.matmul(from_grid, grid[..., :h] * grid[..., h:], out=back[start:start + GRID_NODES])
    return (back.view(-1, h) @ out_w.t()).view(n, from_grid.shape[0], out_w.shape[0])


def _backward_cpu(grad, x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w, maps: Optional[tuple] = None):
    """dx (N, S, C) for the output gradient ``grad`` (N, S_out, C_out), CPU, by blocks of atoms;
    ``maps``: the forward's _coefficients (else recomputed)."""
    n, s, c = x.shape
    h = left_w.shape[0]
    to_grid, from_grid, left_w, left_b, right_w, right_b, out_w = _cast(x, to_grid, from_grid, left_w, left_b,
                                                                         right_w, right_b, out_w)
    coefficients, both, bias = maps if maps is not None else _coefficients(x, to_grid, left_w, left_b, right_w,
                                                                           right_b)
    d_back = (grad.to(x.dtype).reshape(-1, grad.shape[-1]) @ out_w).view(n, from_grid.shape[0], h)  # (N, S_out, H)
    d_coefficients = x.new_empty(n, s, 2 * h)
    to_grid_t, from_grid_t = to_grid.t(), from_grid.t()
    d_grid = x.new_empty(min(n, GRID_NODES), to_grid.shape[0], 2 * h)
    for start in range(0, n, GRID_NODES):
        block = slice(start, start + GRID_NODES)
        k = coefficients[block].shape[0]
        grid = _grid_values(coefficients[block], to_grid, bias)  # (k, P, 2H)
        d_hidden = torch.matmul(from_grid_t, d_back[block])  # (k, P, H)
        torch.mul(d_hidden, grid[..., h:], out=d_grid[:k, :, :h])
        torch.mul(d_hidden, grid[..., :h], out=d_grid[:k, :, h:])
        torch.matmul(to_grid_t, d_grid[:k], out=d_coefficients[block])
    return (d_coefficients.view(n * s, 2 * h) @ both).view(n, s, c)


def _forward(*inputs, keep: Optional[list] = None):
    return _launch(*inputs) if use_triton(inputs[0]) else _forward_cpu(*inputs, keep=keep)


def _backward(grad, maps, *inputs):
    if use_triton(inputs[0]):
        return _launch_backward(grad, *inputs)
    return _backward_cpu(grad, *inputs, maps=maps)


class _GridMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, *inputs):
        ctx.save_for_backward(*inputs)
        keep = []
        out = _forward(*inputs, keep=keep)
        ctx.maps = keep[0] if keep else None  # intermediates, never part of the autograd graph
        return out

    @staticmethod
    def backward(ctx, grad):
        inputs = ctx.saved_tensors
        wanted = wanted_gradients(ctx, inputs)
        if any(wanted[1:]):  # weight gradients (training): the reference, grid tensor and all
            return tuple(reference_vjp(grid_mlp_reference, inputs, wanted, grad))
        if not wanted[0]:
            return (None,) * len(inputs)
        if torch.is_grad_enabled():  # a graph of the backward (training on forces): differentiable again
            dx = _GridMLPBackward.apply(grad, *inputs, ctx.maps)
        else:
            dx = _backward(grad, ctx.maps, *inputs)
        return (dx,) + (None,) * (len(inputs) - 1)


def _reference_dx(grad, x, *weights):
    return reference_vjp(grid_mlp_reference, (x, *weights), (True,) + (False,) * len(weights), grad)[0]


class _GridMLPBackward(torch.autograd.Function):
    """(grad, x, weights..., the forward's _coefficients or None) -> dx by the fused kernel (or the
    CPU implementation); its own backward (the double backward of training on forces) is the
    reference's, recomputed."""

    @staticmethod
    def forward(ctx, grad, *inputs_and_maps):
        *inputs, maps = inputs_and_maps
        ctx.save_for_backward(grad, *inputs)
        return _backward(grad, maps, *inputs)

    @staticmethod
    def backward(ctx, grad_dx):
        saved = ctx.saved_tensors
        return (*reference_vjp(_reference_dx, saved, wanted_gradients(ctx, saved), grad_dx), None)


def cpu_inference_available(x: torch.Tensor) -> bool:
    """Whether grid_mlp(..., inference=True) on ``x`` runs the CPU implementation."""
    return (get_backend() != "torch" and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and not torch.compiler.is_compiling())


def grid_mlp(x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor, left_w: torch.Tensor,
             left_b: torch.Tensor, right_w: torch.Tensor, right_b: torch.Tensor, out_w: torch.Tensor,
             inference: bool = False) -> torch.Tensor:
    """(N, S, C) -> (N, S, C_out), the fused sphere-grid product MLP: Triton (CUDA), the CPU
    implementation (``inference``: a module in eval mode), else the reference; TorchScript calls the
    operator ``mlip::grid_mlp`` (mlip.kernels.operators), this function in inference mode."""
    if not torch.jit.is_scripting():
        if use_triton(x) or (inference and cpu_inference_available(x)):
            return _GridMLP.apply(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)
    else:  # the same code, as an operator (mlip.kernels.operators)
        return torch.ops.mlip.grid_mlp(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)
    return grid_mlp_reference(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w)

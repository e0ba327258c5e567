"""Gaunt tensor products: products of spherical-harmonic features as products of functions on the
sphere, computed in a 2D Fourier basis (Luo, Chen & Krishnapriyan, "Enabling Efficient Equivariant
Operations in the Fourier Basis via Gaunt Tensor Products", ICLR 2024).

A feature x with coefficients x_lm (l <= L, this project's real harmonics: mlip.nn.spherical_harmonics)
is the function f(r) = sum_lm x_lm Y_lm(r) on the sphere. Written in the angles of
r = (sin θ cos φ, sin θ sin φ, cos θ), every Y_lm is a trigonometric polynomial of degree <= l in
θ and in φ (a homogeneous polynomial of degree l in x, y, z), so

    f(θ, φ) = sum_{|u|,|v| <= L} F_uv exp(i(uθ + vφ)),   F_uv non-zero only for |v| = |m| of some x_lm.

The Gaunt product of x and y, out_c = mean over the sphere of (f_x f_y Y_c) for every c up to the
output degree, is then (1) the sparse conversions x -> F (O(L^3): Y_lm only has v = ±m), (2) the 2D
convolution of the two coefficient grids (by FFT, O(L^2 log L), or directly), (3) the
projection back onto Y_c, again sparse in v. Every conversion matrix is computed once, exactly
(the Fourier coefficients of Y_lm from a 2D DFT of 2L+1 samples per angle, the projection from the
closed-form integrals of exp(ikθ) sin θ over [0, π]).

It equals the Clebsch-Gordan product with Gaunt coefficients (mlip.nn.so3's quadrature): every
path (l1, l2, l3) with l1 + l2 + l3 even, each with the fixed weight the Gaunt integral gives it.
What it cannot express: the odd paths (l1 + l2 + l3 odd, such as the cross product 1 x 1 -> 1), whose
coupling is antisymmetric and vanishes for a product of functions; and a free weight per path (the
weights come per degree, on the inputs and the output).
"""

from __future__ import annotations

import functools
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from mlip.kernels import use_triton
from mlip.kernels.gaunt import gaunt_edge_product
from mlip.nn.constants import ExactBuffers
from mlip.nn.s2_grid import S2Grid
from mlip.nn.scatter import scatter_sum
from mlip.nn.spherical_harmonics import spherical_harmonics


@functools.lru_cache(maxsize=None)
def harmonics_fourier(lmax: int) -> np.ndarray:
    """(S, 2L+1, 2L+1) complex: F[a, u+L, v+L], the 2D Fourier coefficients of Y_a(θ, φ), exact
    (a 2D DFT of the harmonics sampled at 2L+1 equally spaced θ and φ over the full circle)."""
    n = 2 * lmax + 1
    t = 2 * np.pi * np.arange(n) / n
    theta, phi = np.meshgrid(t, t, indexing="ij")
    vec = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    y = spherical_harmonics(lmax, torch.from_numpy(vec), normalize=False).numpy()  # (n, n, S)
    f = np.fft.fft2(y, axes=(0, 1)) / n**2  # frequency (u, v) at [u mod n, v mod n]
    freq = np.arange(-lmax, lmax + 1) % n
    out = f[freq][:, freq]  # (2L+1, 2L+1, S)
    out[np.abs(out) < 1e-13] = 0.0
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def _theta_integral(k: np.ndarray) -> np.ndarray:
    """∫_0^π exp(ikθ) sin θ dθ for integer k: (1 + (-1)^k) / (1 - k^2), and ±iπ/2 at k = ±1."""
    k = np.asarray(k)
    out = np.zeros(k.shape, dtype=complex)
    regular = np.abs(k) != 1
    kr = k[regular].astype(float)
    out[regular] = (1 + (-1.0) ** np.abs(k[regular])) / (1 - kr**2)
    out[k == 1] = 1j * np.pi / 2
    out[k == -1] = -1j * np.pi / 2
    return out


@functools.lru_cache(maxsize=None)
def fourier_projection(lmax_out: int, lmax_in: int) -> np.ndarray:
    """(S_out, 2L+1, 2L+1) complex P, L = lmax_in: P[c, u+L, v+L] = mean over the sphere of
    exp(i(uθ + vφ)) Y_c, so that out_c = Re sum_uv F_uv P[c, u, v] projects a function given by its
    Fourier coefficients F onto the harmonics (exact: Y_c's own coefficients and closed-form θ
    integrals)."""
    yhat = harmonics_fourier(lmax_out)  # (S_out, 2Lo+1, 2Lo+1)
    lo = lmax_out
    u = np.arange(-lmax_in, lmax_in + 1)
    u_prime = np.arange(-lo, lo + 1)
    j = _theta_integral(u[:, None] + u_prime[None, :])  # (2L+1, 2Lo+1)
    proj = np.zeros((yhat.shape[0], 2 * lmax_in + 1, 2 * lmax_in + 1), dtype=complex)
    for v in range(-min(lo, lmax_in), min(lo, lmax_in) + 1):
        # mean = 1/(4π) · 2π δ(v + v') · Σ_u' ŷ[u', v'] J(u + u')
        proj[:, :, v + lmax_in] = 0.5 * yhat[:, :, -v + lo] @ j.T
    proj[np.abs(proj) < 1e-13] = 0.0
    return proj


def _by_order(lmax: int) -> List[List[int]]:
    """Coefficient indices grouped by |m|: entry k lists (l, ±k) for l = k..lmax."""
    groups: List[List[int]] = [[] for _ in range(lmax + 1)]
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            groups[abs(m)].append(l * l + l + m)
    return groups


class _OrderBlock(ExactBuffers):
    """The conversion entries of the coefficients with |m| = k (buffers re, im (n_k, 2L+1, 1 or 2)
    and their coefficient indices ``rows``)."""

    def __init__(self, table: np.ndarray, rows: List[int], cols: List[int]):
        super().__init__()
        block = torch.from_numpy(np.ascontiguousarray(table[rows][:, :, cols]))
        self.register_exact("re", block.real.contiguous())
        self.register_exact("im", block.imag.contiguous())
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)


class ToFourier(nn.Module):
    """(..., (L+1)^2) real coefficients -> (..., 2L+1, 2L+1) complex 2D Fourier coefficients [u, v],
    by one small product per |m| (Y_lm only has v = ±m): O(L^3)."""

    def __init__(self, lmax: int):
        super().__init__()
        self.lmax = lmax
        yhat = harmonics_fourier(lmax)
        blocks, produced = [], []
        for k, rows in enumerate(_by_order(lmax)):
            cols = [lmax - k, lmax + k] if k > 0 else [lmax]
            blocks.append(_OrderBlock(yhat, rows, cols))
            produced += cols
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("column_order", torch.argsort(torch.tensor(produced)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: List[torch.Tensor] = []
        for block in self.blocks:
            xk = x.index_select(-1, block.rows)
            re = torch.einsum("...a,auw->...uw", xk, block.re)
            im = torch.einsum("...a,auw->...uw", xk, block.im)
            parts.append(torch.complex(re, im))
        return torch.cat(parts, dim=-1).index_select(-1, self.column_order)


class FromFourier(nn.Module):
    """(..., 2L+1, 2L+1) complex Fourier coefficients of a function -> (..., (Lo+1)^2) real
    coefficients of its projection onto the harmonics up to Lo (sparse in v: O(L^2 Lo))."""

    def __init__(self, lmax_out: int, lmax_in: int):
        super().__init__()
        self.lmax_out, self.lmax_in = lmax_out, lmax_in
        proj = fourier_projection(lmax_out, lmax_in)
        blocks, order = [], []
        for k, rows in enumerate(_by_order(lmax_out)):
            order += rows
            cols = [lmax_in - k, lmax_in + k] if k > 0 else [lmax_in]
            blocks.append(_OrderBlock(proj, rows, cols))
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("inverse", torch.argsort(torch.tensor(order)), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts: List[torch.Tensor] = []
        for block in self.blocks:
            zk = z.index_select(-1, block.cols)  # (..., 2L+1, 1 or 2)
            # Re(z P) = Re z Re P - Im z Im P
            parts.append(torch.einsum("...uw,cuw->...c", torch.real(zk), block.re)
                         - torch.einsum("...uw,cuw->...c", torch.imag(zk), block.im))
        return torch.cat(parts, dim=-1).index_select(-1, self.inverse)


def convolve2d(a: torch.Tensor, b: torch.Tensor, method: str = "fft") -> torch.Tensor:
    """Full 2D convolution of complex grids over the last two dims (..., n1, n1) * (..., n2, n2)
    -> (..., n1 + n2 - 1, same); "fft" (O(n^2 log n)) or "direct" (O(n1^2 n2^2), fewer launches
    for small grids)."""
    n1, n2 = a.shape[-1], b.shape[-1]
    n = n1 + n2 - 1
    if method == "fft":
        return torch.fft.ifft2(torch.fft.fft2(a, s=[n, n]) * torch.fft.fft2(b, s=[n, n]))
    if method != "direct":
        raise ValueError("convolution method must be 'fft' or 'direct', got " + method)
    if n1 < n2:
        a, b = b, a
        n1, n2 = n2, n1
    terms: List[torch.Tensor] = []
    for i in range(n2):
        for j in range(n2):  # a shifted by each of b's (smaller) entries
            shifted = torch.nn.functional.pad(a * b[..., i:i + 1, j:j + 1], [j, n2 - 1 - j, i, n2 - 1 - i])
            terms.append(shifted)
    return torch.stack(terms, dim=0).sum(0)


class GauntProduct(torch.nn.Module):
    """forward(x (..., (L1+1)^2), y (..., (L2+1)^2)) -> (..., (Lo+1)^2): the channel-wise (any
    leading dims, broadcast) Gaunt product out_c = mean over the sphere of f_x f_y Y_c.

    ``method``: "fft" or "direct" 2D convolution; "auto" is "fft", faster at every L measured
    (benchmarks/bench_gaunt.py, 2-core CPU: 1.8 against 2.0 ms at L = 1, 87 against 1936 ms at L = 8).
    """

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, method: str = "auto"):
        super().__init__()
        if method not in ("auto", "fft", "direct"):
            raise ValueError(f"method must be 'auto', 'fft' or 'direct', got {method!r}")
        self.lmax1, self.lmax2, self.lmax_out = lmax1, lmax2, lmax_out
        self.method = "fft" if method == "auto" else method
        self.first = ToFourier(lmax1)
        self.second = self.first if lmax2 == lmax1 else ToFourier(lmax2)
        self.back = FromFourier(lmax_out, lmax1 + lmax2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.back(convolve2d(self.first(x), self.second(y), self.method))


class GauntPower(torch.nn.Module):
    """forward(x (..., (L+1)^2)) -> (..., nu - 1, (Lo+1)^2): the projections of f_x^2, ..., f_x^nu onto
    the harmonics up to Lo: a node's many-body features of body order up to nu + 1 (MACE's
    correlation nu). Both routes are exact and give the same numbers (to rounding):

    - ``method="grid"`` (default): f_x on the Gauss-Legendre x uniform sphere grid that integrates
      degree nu L + Lo exactly (mlip.nn.s2_grid; 45 points at L = Lo = 2, nu = 3), raised
      pointwise, projected back: two small real matrix products, the fastest route on a CPU
      (benchmarks/bench_train_step.py);
    - ``method="fft"``: the paper's route, by repeated Gaunt products: f_x on one uniform (θ, φ)
      grid fine enough for f^nu (2 nu L + 1 points per angle, 169 at L = 2, nu = 3), raised
      pointwise, brought back by FFT.
    """

    def __init__(self, lmax: int, correlation: int, lmax_out: int, method: str = "grid"):
        super().__init__()
        if correlation < 2:
            raise ValueError(f"correlation must be >= 2, got {correlation}")
        if method not in ("grid", "fft"):
            raise ValueError(f"method must be 'grid' or 'fft', got {method!r}")
        self.lmax, self.correlation, self.lmax_out = lmax, correlation, lmax_out
        self.top = correlation * lmax
        # not saved in state dicts: constants, and files saved with the other route still load
        self.grid: Optional[S2Grid] = (S2Grid(lmax, self.top + lmax_out, lmax_out, persistent=False)
                                       if method == "grid" else None)
        self.to_fourier: Optional[ToFourier] = ToFourier(lmax) if method == "fft" else None
        self.back: Optional[FromFourier] = FromFourier(lmax_out, self.top) if method == "fft" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: List[torch.Tensor] = []
        if self.grid is not None:
            values = x @ self.grid.to_grid_matrix.t().to(x.dtype)  # (..., P)
            power = values
            for _ in range(2, self.correlation + 1):
                power = power * values
                outputs.append(power @ self.grid.from_grid_matrix.t().to(x.dtype))
        else:
            to_fourier, back = self.to_fourier, self.back
            assert to_fourier is not None and back is not None
            n = 2 * self.top + 1
            coefficients = to_fourier(x)  # (..., 2L+1, 2L+1), frequency u at index u + L
            # values on the grid θ_j = φ_j = 2πj/n: the inverse DFT of the coefficients, centred
            pad = self.top - self.lmax
            padded = torch.nn.functional.pad(coefficients, [pad, pad, pad, pad])
            grid_values = torch.fft.ifft2(torch.fft.ifftshift(padded, dim=[-2, -1])) * (n * n)
            power = grid_values
            for _ in range(2, self.correlation + 1):
                power = power * grid_values
                spectrum = torch.fft.fftshift(torch.fft.fft2(power), dim=[-2, -1]) / (n * n)
                outputs.append(back(spectrum))
        return torch.stack(outputs, dim=-2)

    def _load_from_state_dict(self, state_dict, prefix, *args):
        # files saved before the grid route hold the FFT route's conversion tables (exact constants)
        if self.grid is not None:
            for key in [k for k in state_dict if k.startswith((prefix + "to_fourier.", prefix + "back."))]:
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args)


class EdgeGauntProduct(ExactBuffers):
    """Messages of node features with their edges' harmonics by the Gaunt product, the drop-in
    alternative to EdgeTensorProduct (the same ``edge_messages`` call).

    ``edge_messages(x (N, S_in, C), source (E,), sh (E, S_sh), weights (E, P, H)) -> (E, S_out, C)``:
    for channel c of head h, out = w_out[l3] * Gaunt(x_source, sum_l2 w_sh[l2] Y_l2(r)), with
    P = (lmax_sh + 1) + (lmax_out + 1) radial weights per head: one per degree of the harmonics and
    one per output degree, where the Clebsch-Gordan product has one per path (l1, l2, l3). The node
    features go to the Fourier basis and their spectra once per node (not per edge), the harmonics
    once per edge and head. Like EdgeTensorProduct, only the parity-keeping paths (l1 + l2 + l3 even) exist; the input
    degree's mixing is left to the linear layer before (per node, not per edge).
    On CUDA (mlip.kernels.dispatch) the convolution and projection run fused in
    mlip.kernels.gaunt_edge_product, which keeps no per-edge, per-channel grid.
    """

    def __init__(self, lmax_in: int, lmax_sh: int, lmax_out: int):
        super().__init__()
        self.lmax_in, self.lmax_sh, self.lmax_out = lmax_in, lmax_sh, lmax_out
        self.num_paths = (lmax_sh + 1) + (lmax_out + 1)  # radial weights per head (EdgeTensorProduct's name)
        self.nodes = ToFourier(lmax_in)
        self.harmonics = ToFourier(lmax_sh)
        self.back = FromFourier(lmax_out, lmax_in + lmax_sh)
        self.grid = 2 * (lmax_in + lmax_sh) + 1  # the product's frequencies fit without wrapping
        self.register_buffer("degree_sh", torch.tensor([l for l in range(lmax_sh + 1) for _ in range(2 * l + 1)]),
                             persistent=False)
        self.register_buffer("degree_out", torch.tensor([l for l in range(lmax_out + 1) for _ in range(2 * l + 1)]),
                             persistent=False)
        p = torch.from_numpy(fourier_projection(lmax_out, lmax_in + lmax_sh))  # the kernel's dense projection
        self.register_exact("projection", torch.stack([p.real, p.imag], dim=1).reshape(p.shape[0], 2, -1),
                            persistent=False)

    def aggregate(self, x: torch.Tensor, edge_index: torch.Tensor, sh: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
        """EdgeTensorProduct's call: the messages of the edges (source, target) summed at each target."""
        return scatter_sum(self.edge_messages(x, edge_index[0], sh, weights), edge_index[1], x.shape[0])

    def aggregate_invariant(self, x: torch.Tensor, edge_index: torch.Tensor, sh: torch.Tensor,
                            weights: torch.Tensor) -> torch.Tensor:
        """EdgeTensorProduct's call for features whose degrees l >= 1 are zero: here ``aggregate``."""
        return self.aggregate(x, edge_index, sh, weights)

    def edge_messages(self, x: torch.Tensor, source: torch.Tensor, sh: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        nodes, s_in, channels = x.shape
        edges, heads = weights.shape[0], weights.shape[-1]
        per_head = channels // heads
        if edges == 0:  # MKL's FFT refuses empty batches
            return x.new_zeros(0, (self.lmax_out + 1) * (self.lmax_out + 1), channels)
        if not torch.jit.is_scripting():
            if use_triton(x):
                return self._fused_messages(x, source, sh, weights)
        grid = [self.grid, self.grid]
        # the node features' spectra on the product's grid, once per node (not per edge)
        spectra = torch.fft.fft2(self.nodes(x.transpose(1, 2)), s=grid)  # (N, C, g, g)
        fx = spectra.index_select(0, source).view(edges, heads, per_head, self.grid, self.grid)
        w_sh = weights[:, :self.lmax_sh + 1].index_select(1, self.degree_sh)  # (E, S_sh, H)
        fy = self.harmonics((sh.unsqueeze(-1) * w_sh).transpose(1, 2)).unsqueeze(2)  # (E, H, 1, n', n')
        out = self.back(torch.fft.ifft2(fx * torch.fft.fft2(fy, s=grid)))  # (E, H, C/H, S_out)
        w_out = weights[:, self.lmax_sh + 1:].index_select(1, self.degree_out)  # (E, S_out, H)
        out = out * w_out.transpose(1, 2).unsqueeze(2)  # (E, H, C/H, S_out)
        s_out = out.shape[-1]
        return out.permute(0, 3, 1, 2).reshape(edges, s_out, channels)

    @torch.jit.unused
    def _fused_messages(self, x: torch.Tensor, source: torch.Tensor, sh: torch.Tensor,
                        weights: torch.Tensor) -> torch.Tensor:
        """edge_messages by the fused kernel: the same numbers, no (E, C, grid, grid) intermediates."""
        nodes, _, channels = x.shape
        edges, heads = weights.shape[0], weights.shape[-1]
        fx = self.nodes(x.transpose(1, 2))  # (N, C, 2L+1, 2L+1)
        fx = torch.stack([fx.real, fx.imag], dim=2).reshape(nodes, channels, 2, -1)
        w_sh = weights[:, :self.lmax_sh + 1].index_select(1, self.degree_sh)  # (E, S_sh, H)
        fy = self.harmonics((sh.unsqueeze(-1) * w_sh).transpose(1, 2))  # (E, H, n', n')
        fy = torch.stack([fy.real, fy.imag], dim=2).reshape(edges, heads, 2, -1)
        out = gaunt_edge_product(fx, source, fy, self.projection)  # (E, S_out, C)
        w_out = weights[:, self.lmax_sh + 1:].index_select(1, self.degree_out)  # (E, S_out, H)
        return out * w_out.repeat_interleave(channels // heads, dim=2)


def gaunt_reference(lmax1: int, lmax2: int, lmax_out: int) -> torch.Tensor:
    """(S1, S2, S_out) float64: the Gaunt coefficients mean(Y_a Y_b Y_c) by exact sphere quadrature
    (mlip.nn.so3), the reference the Fourier route must reproduce."""
    from mlip.nn.so3 import _gaunt_numpy

    s1, s2, so = ((l + 1) ** 2 for l in (lmax1, lmax2, lmax_out))
    table = np.zeros((s1, s2, so))
    for l1 in range(lmax1 + 1):
        for l2 in range(lmax2 + 1):
            for l3 in range(lmax_out + 1):
                table[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2] = _gaunt_numpy(l1, l2, l3)
    return torch.from_numpy(table)


__all__ = ["GauntProduct", "GauntPower", "EdgeGauntProduct", "ToFourier", "FromFourier", "convolve2d", "gaunt_reference",
           "harmonics_fourier", "fourier_projection"]

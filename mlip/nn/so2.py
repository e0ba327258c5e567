"""Edge frames and SO(2) linear maps: the pieces of eSCN's convolution (Passaro and Zitnick 2023).

In a frame whose z axis is the edge direction, spherical-harmonic coefficients keep only
|m| <= mmax ("compact" layout: the kept (l, m) in their order of mlip.nn.spherical_harmonics), and
a linear map that commutes with rotations about z is all an equivariant edge convolution needs:
m = 0 mixes (l, channel) freely; for m > 0 the (+m, -m) pair is mixed like a complex number times
a complex weight, which commutes with the 2D rotation a z rotation applies to that pair.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import nn

from mlip.kernels import rotate_into, rotate_out_of
from mlip.nn.constants import ExactBuffers
from mlip.nn.so3 import sphere_quadrature
from mlip.nn.spherical_harmonics import spherical_harmonics


def edge_rotation(vec: torch.Tensor, roll: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(E,3,3) rotations R with R u = z for u = vec/|vec|; ``roll`` (E,) radians turns the frame
    about the edge (any roll gives the same eSCN output: the tests check it)."""
    u = vec / vec.norm(p=2, dim=-1, keepdim=True)
    use_x = (u[:, 0].abs() < 0.9).to(u.dtype)  # helper x if u is far from x, else y: never (anti)parallel to u
    helper = torch.stack([use_x, 1 - use_x, torch.zeros_like(use_x)], dim=-1)
    v1 = helper - (helper * u).sum(-1, keepdim=True) * u
    v1 = v1 / v1.norm(p=2, dim=-1, keepdim=True)
    v2 = torch.linalg.cross(u, v1)
    if roll is not None:
        c, s = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
        v1, v2 = c * v1 + s * v2, c * v2 - s * v1
    return torch.stack([v1, v2, u], dim=1)


def kept_coefficients(lmax: int, mmax: int) -> List[int]:
    """Indices (into (lmax+1)^2) of the coefficients with |m| <= mmax, in order."""
    return [l * l + l + m for l in range(lmax + 1) for m in range(-l, l + 1) if abs(m) <= mmax]


class EdgeFrame(ExactBuffers):
    """Rotations into and out of each edge's frame, truncated to |m| <= mmax.

    ``matrices(vec, roll)`` -> (E, K, S): the kept rows of the block Wigner-D of the edge rotation
    (K kept coefficients), D_ab = mean over the sphere of Y_a(R x) Y_b(x), by one quadrature exact
    to degree 2 lmax for all degrees at once. ``into(D, x (E,S,C))`` -> (E,K,C);
    ``out_of(D, y (E,K,C))`` -> (E,S,C).
    """

    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.register_buffer("kept", torch.tensor(kept_coefficients(lmax, mmax)), persistent=False)
        degree = torch.tensor([math.isqrt(int(s)) for s in self.kept])  # rows grouped by degree
        self.register_buffer("row_start", degree**2, persistent=False)  # row k acts on columns [l^2, (l+1)^2)
        self.register_buffer("row_end", (degree + 1) ** 2, persistent=False)
        points, weights = sphere_quadrature(2 * lmax)
        pts = torch.as_tensor(points, dtype=torch.float64)
        y = spherical_harmonics(lmax, pts, normalize=False)  # (P, S)
        self.register_exact("points", pts)
        self.register_exact("weighted_harmonics", y * torch.as_tensor(weights, dtype=torch.float64)[:, None])

    def matrices(self, vec: torch.Tensor, roll: Optional[torch.Tensor] = None) -> torch.Tensor:
        rotation = edge_rotation(vec, roll)  # (E, 3, 3)
        rotated = torch.einsum("pj,eij->epi", self.points, rotation)  # R x_p
        y = spherical_harmonics(self.lmax, rotated, normalize=False).index_select(2, self.kept)  # (E, P, K)
        return torch.einsum("epk,ps->eks", y, self.weighted_harmonics)

    def into(self, d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rotate_into(d, x, self.row_start, self.row_end)

    def out_of(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return rotate_out_of(d, y, self.row_start, self.row_end)


class _PairBlock(nn.Module):
    """One m > 0: the (+m, -m) coefficient pair as x_+ + i x_-, times W_r + i W_i."""

    def __init__(self, plus: List[int], minus: List[int], channels_in: int, channels_out: int):
        super().__init__()
        self.register_buffer("plus", torch.tensor(plus), persistent=False)
        self.register_buffer("minus", torch.tensor(minus), persistent=False)
        self.channels_out = channels_out
        self.linear = nn.Linear(len(plus) * channels_in, 2 * len(plus) * channels_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edges = x.shape[0]
        xp = self.linear(x.index_select(1, self.plus).flatten(1))  # flatten, not view(edges, -1): 0 edges work
        xm = self.linear(x.index_select(1, self.minus).flatten(1))
        n = xp.shape[1] // 2
        real = xp[:, :n] - xm[:, n:]  # real part to +m, imaginary part to -m
        imag = xm[:, :n] + xp[:, n:]
        return torch.cat([real, imag], dim=1).view(edges, 2 * self.plus.shape[0], self.channels_out)


class SO2Linear(nn.Module):
    """(E, K, C_in) -> (E, K, C_out) on compact edge-frame coefficients, commuting with rotations
    about z. ``gate`` (E, num_gates * C_in), optional: multiplies the input first (eSCN conditions
    its convolution on an invariant edge embedding this way); one gate per (l, |m|) and channel,
    shared by +m and -m, so the product still commutes with rotations about z."""

    def __init__(self, lmax: int, mmax: int, channels_in: int, channels_out: int):
        super().__init__()
        kept = kept_coefficients(lmax, mmax)
        position = {idx: k for k, idx in enumerate(kept)}
        self.channels_in, self.channels_out = channels_in, channels_out
        zero = [position[l * l + l] for l in range(lmax + 1)]
        self.register_buffer("zero", torch.tensor(zero), persistent=False)
        self.linear_zero = nn.Linear((lmax + 1) * channels_in, (lmax + 1) * channels_out)
        order = list(zero)
        blocks = []
        for m in range(1, mmax + 1):
            plus = [position[l * l + l + m] for l in range(m, lmax + 1)]
            minus = [position[l * l + l - m] for l in range(m, lmax + 1)]
            blocks.append(_PairBlock(plus, minus, channels_in, channels_out))
            order += plus + minus
        self.pairs = nn.ModuleList(blocks)
        self.register_buffer("order", torch.tensor(order), persistent=False)
        slots = {}
        gate_of = []
        for idx in kept:
            l = int(idx ** 0.5)
            gate_of.append(slots.setdefault((l, abs(idx - l * l - l)), len(slots)))
        self.num_gates = len(slots)
        self.register_buffer("gate_of", torch.tensor(gate_of), persistent=False)

    def forward(self, x: torch.Tensor, gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        edges = x.shape[0]
        if gate is not None:
            x = x * gate.view(edges, self.num_gates, self.channels_in).index_select(1, self.gate_of)
        zero = self.linear_zero(x.index_select(1, self.zero).flatten(1))
        pieces = [zero.view(edges, self.zero.shape[0], self.channels_out)]
        for pair in self.pairs:
            pieces.append(pair(x))
        out = torch.cat(pieces, dim=1)  # coefficients in the order of self.order
        return torch.zeros_like(out).index_copy(1, self.order, out)

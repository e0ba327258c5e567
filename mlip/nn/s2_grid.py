"""Projection of spherical-harmonic coefficients (N, S, C) onto points of the sphere and back.

``S2Grid(lmax, degree)`` picks the quadrature of mlip.nn.so3.sphere_quadrature that is exact for
polynomials of degree ``degree`` on the sphere. With features of degree <= lmax, a pointwise
function of polynomial degree k on the grid gives a function of degree k * lmax; projecting it
back onto degree <= lmax is then exact (and exactly equivariant) when degree >= (k + 1) * lmax
(onto degree <= lmax_out: when degree >= k * lmax + lmax_out).
"""

from __future__ import annotations

from typing import Optional

import torch
from mlip.nn.constants import ExactBuffers
from mlip.nn.so3 import sphere_quadrature
from mlip.nn.spherical_harmonics import spherical_harmonics


class S2Grid(ExactBuffers):
    """to_grid: (N, S, C) -> (N, P, C); from_grid: (N, P, C) -> (N, S_out, C), S = (lmax+1)^2,
    S_out = (lmax_out+1)^2 (lmax_out: default lmax). ``persistent``: whether the matrices are saved
    in state dicts (constants; False for modules added after files were saved without them)."""

    def __init__(self, lmax: int, degree: int, lmax_out: Optional[int] = None, persistent: bool = True):
        super().__init__()
        lmax_out = lmax if lmax_out is None else lmax_out
        points, weights = sphere_quadrature(degree)
        pts = torch.as_tensor(points, dtype=torch.float64)
        y = spherical_harmonics(max(lmax, lmax_out), pts, normalize=False)  # (P, S); mean(Y_a Y_b) = δ_ab
        self.lmax, self.lmax_out = lmax, lmax_out
        self.num_points = pts.shape[0]
        self.register_exact("to_grid_matrix", y[:, :(lmax + 1) ** 2].contiguous(), persistent)  # (P, S)
        self.register_exact("from_grid_matrix", (y[:, :(lmax_out + 1) ** 2] * torch.as_tensor(weights)[:, None])
                            .T.contiguous(), persistent)  # (S_out, P)

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ps,nsc->npc", self.to_grid_matrix, x)

    def from_grid(self, g: torch.Tensor) -> torch.Tensor:
        return torch.einsum("sp,npc->nsc", self.from_grid_matrix, g)

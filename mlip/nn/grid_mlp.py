"""The spherical-grid node update: features to points on the sphere, an MLP over channels at each
point, and back.

This project's choice (not the Facet paper's): the MLP's nonlinearity is the product of two linear
maps, (W_a g + b_a) * (W_b g + b_b), a polynomial of degree 2. The function on the sphere then stays
band-limited at 2 lmax, and the grid (exact to degree 3 lmax) projects it back without error, so
the layer is exactly equivariant. A SiLU MLP on a finite grid, as in the paper, is equivariant only
up to the grid's resolution, and the physics suite asks for 1e-8.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mlip.kernels import grid_mlp
from mlip.nn.s2_grid import S2Grid


class GridProductMLP(nn.Module):
    """(N, S, C) -> (N, S, C_out), S = (lmax+1)^2: to_grid, W_out[(W_a g + b_a) * (W_b g + b_b)], from_grid
    (fused in mlip.kernels.grid_mlp: the grid tensor is not stored)."""

    def __init__(self, lmax: int, channels: int, hidden: int, channels_out: Optional[int] = None):
        super().__init__()
        self.grid = S2Grid(lmax, degree=3 * lmax)
        self.left = nn.Linear(channels, hidden)
        self.right = nn.Linear(channels, hidden)
        self.out = nn.Linear(hidden, channels_out or channels, bias=False)
        nn.init.normal_(self.out.weight, std=hidden**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        return grid_mlp(x, self.grid.to_grid_matrix.to(dtype), self.grid.from_grid_matrix.to(dtype), self.left.weight,
                        self.left.bias, self.right.weight, self.right.bias, self.out.weight, not self.training)

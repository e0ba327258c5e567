"""The periodic directions of a structure: from its pbc flags, never from which cell vectors are zero.

A molecule written in a vacuum box (extxyz ``Lattice=... pbc="F F F"``, ``atoms.center(vacuum=...)``)
has a cell and no periodic direction; a slab has two periodic lattice vectors and a vacuum vector
that is not one. Everything that asks "is this structure periodic, and along what" (frames for
frame averaging, the stress) asks here.

    periodic_axes(cell (B,3,3), pbc (B,3)) -> (B,3,3)    orthonormal rows spanning the periodic vectors
    periodic_projector(cell, pbc) -> (B,3,3)             the projector onto that span
"""

from __future__ import annotations

import torch


def periodic_axes(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """(B,3,3) rows u1, u2, u3: Gram-Schmidt of the periodic lattice vectors in lattice order (u1
    along the first periodic vector, u2 in the plane of the first two), then zero rows, one per
    direction that is not periodic. cell (B,3,3) Å, rows are lattice vectors; pbc (B,3) bool."""
    cell = cell.reshape(-1, 3, 3)
    pbc = pbc.reshape(-1, 3).to(torch.bool)
    order = torch.sort((~pbc).to(torch.int64), dim=1, stable=True)[1]  # periodic rows first
    rows = cell.gather(1, order[:, :, None].expand(-1, -1, 3))
    count = pbc.sum(-1)
    axes: list[torch.Tensor] = []
    for k in range(3):
        v = rows[:, k]
        for u in axes:
            v = v - (v * u).sum(-1, keepdim=True) * u
        v = v / torch.sqrt((v * v).sum(-1, keepdim=True).clamp(min=1e-30))
        axes.append(torch.where((count > k)[:, None], v, torch.zeros_like(v)))
    return torch.stack(axes, dim=1)


def periodic_projector(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """(B,3,3) P = sum_k u_k u_k^T over the periodic axes: the identity for a bulk crystal, the
    projector onto a slab's plane or a wire's axis, zero for a molecule."""
    axes = periodic_axes(cell, pbc)
    return axes.transpose(1, 2) @ axes

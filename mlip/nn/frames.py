"""Frames of a structure, for frame averaging (Puny et al., ICLR 2022; FAENet: Duval et al., ICML 2023).

A frame is a rotation U (3,3) whose columns are axes e1, e2, e3 that turn with the structure: for a
structure turned by R, the frames are R U (up to the signs below). A model evaluated on the frame
coordinates x U (edge vectors ``vec @ U``) and averaged over a structure's frames is exactly
invariant (its energy) and equivariant (forces rotated back by U^T), whatever the model.

    structure_frames(pos (N,3), cell (B,3,3), pbc (B,3), batch (N,), num_graphs, num_frames) -> (B, F, 3, 3)

The base frame of a structure:

Periodicity comes from the pbc flags alone (mlip.graph.periodic): the cell vector of a direction that
is not periodic plays no part, so a molecule in a vacuum box is a molecule and a slab's vacuum vector
is ignored.

* with two or three periodic directions (bulk, slabs): Gram-Schmidt of the first two periodic
  lattice vectors, e1 along a1, e2 in the (a1, a2) plane,
  e3 = e1 x e2. It depends on the cell alone, so atoms wrapped into the cell or a supercell along
  the same vectors give the same frame (cubic cells included: there is nothing to diagonalise).
* with one periodic direction (a wire): e1 along its lattice vector, e2 the principal axis of the positions projected
  onto the plane normal to it (unchanged by wrapping along a1).
* without (molecules): principal component analysis of the centred positions (centroid; unweighted
  second moment C = sum_i x_i x_i^T, Å^2), e1 the axis of largest variance, e2 the next, e3 = e1 x e2.

Eigenvectors of C have no sign, so a structure has F frames: the base frame with its axes' signs
flipped in every way that keeps a rotation (F = 4, ``num_frames=4``: invariance under rotations,
SO(3)) or in every way (F = 8: rotations and reflections, O(3)). Periodic frames have a sign
already; they get the same F sign patterns (a larger average, still exact).

Degenerate spectra (two eigenvalues of C closer than ``tol`` times the largest; deterministic):

* prolate (e2, e3 degenerate: linear molecules, prolate symmetric tops such as staggered ethane):
  e2 points at the "anchor", the atom farthest from the e1 axis. Linear molecules have no
  such atom (none farther than (``tol`` lambda_max)^(1/2), lambda_max the largest eigenvalue of C,
  the sum of squared distances along e1): e2 is the lab axis least aligned
  with e1, made normal to it; the atoms have zero coordinates along e2 and e3 in every frame, so
  the average is still exact.
* oblate (e1, e2 degenerate: planar symmetric molecules, benzene): e3 is the simple axis and e1
  points at the anchor in the plane normal to it.
* spherical (all three: CH4, SF6, atoms on a cube, a lone atom): e1 points at the atom farthest
  from the centroid, e2 at the anchor normal to e1.

Anchors are exactly covariant; among atoms at the same distance (within a relative 1e-6, symmetric
molecules have several) the first in the input order wins, so in those structures the frame (and a
non-invariant model's output) depends on the atoms' order. Frames are not continuous everywhere:
where two eigenvalues cross, the frame set turns (by 90 degrees about the third axis), and where a
gap falls below ``tol``, or the anchor changes atom, it switches construction; a model that is not
invariant by itself then has an energy that jumps there (sign flips alone permute the frame set and
change nothing). Forces are the gradient of the averaged energy (eigenvalues by ``eigvalsh``, whose
gradient is finite, eigenvectors by cross products of the rows of C - lambda I): exact away from
those places. A frame depends on every atom, so a frame-averaged model is not local: an atom's
energy changes when an atom beyond the cutoff (or beyond ``interaction_hops`` edges) moves.
"""

from __future__ import annotations

from typing import Tuple

import torch

from mlip.graph.periodic import periodic_axes
from mlip.nn.scatter import scatter_sum

FRAME_GROUPS = {"so3": 4, "o3": 8}


def _unit(v: torch.Tensor) -> torch.Tensor:
    """v / |v| along the last axis; 0 (with a zero gradient) for v = 0."""
    norm = torch.sqrt((v * v).sum(-1, keepdim=True).clamp(min=1e-30))
    return v / norm


def _project_out(v: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """v minus its component along the unit vector ``axis`` (both (..., 3))."""
    return v - (v * axis).sum(-1, keepdim=True) * axis


def top_eigenvector(c: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """(B,3) unit eigenvector of the symmetric c (B,3,3) for its simple eigenvalue lam (B,): the
    largest cross product of two rows of c - lam I (its rows span the plane normal to it)."""
    m = c - lam[:, None, None] * torch.eye(3, dtype=c.dtype, device=c.device)
    crosses = torch.stack([torch.linalg.cross(m[:, 0], m[:, 1]), torch.linalg.cross(m[:, 0], m[:, 2]),
                           torch.linalg.cross(m[:, 1], m[:, 2])], dim=1)
    best = (crosses * crosses).sum(-1).argmax(dim=1)
    return _unit(crosses.gather(1, best[:, None, None].expand(-1, 1, 3)).squeeze(1))


def farthest(vectors: torch.Tensor, batch: torch.Tensor, num_graphs: int,
             minimum: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per structure, the unit direction of its longest vector ((B,3)) and whether it is longer than
    ``minimum`` (B,); among vectors within a relative 1e-6 of the longest, the first atom's."""
    length = torch.sqrt((vectors * vectors).sum(-1).clamp(min=1e-30))
    longest = torch.zeros(num_graphs, dtype=length.dtype, device=length.device).scatter_reduce(
        0, batch, length, reduce="amax", include_self=True)
    candidate = length >= longest[batch] * (1.0 - 1e-6)
    n = vectors.shape[0]
    order = torch.where(candidate, torch.arange(n, device=vectors.device), torch.full_like(batch, n))
    first = torch.full([num_graphs], n, dtype=batch.dtype, device=batch.device).scatter_reduce(
        0, batch, order, reduce="amin", include_self=True)
    found = (first < n) & (longest > minimum)
    padded = torch.cat([vectors, vectors.new_zeros(1, 3)])
    return _unit(padded[first.clamp(max=n)]), found


def _lab_normal(axis: torch.Tensor) -> torch.Tensor:
    """(B,3) a unit vector normal to the unit ``axis``: the lab axis least aligned with it, made normal."""
    lab = torch.eye(3, dtype=axis.dtype, device=axis.device)[axis.abs().argmin(dim=-1)]
    return _unit(_project_out(lab, axis))


def second_axis(axis: torch.Tensor, centred: torch.Tensor, batch: torch.Tensor, num_graphs: int, tol: float,
                scale: torch.Tensor) -> torch.Tensor:
    """(B,3) e2 normal to the unit ``axis`` (B,3): the principal axis of the centred positions
    (N,3) projected onto the plane normal to ``axis``; where that plane's spectrum is degenerate,
    the direction of the atom farthest from the axis; where no atom is farther from it than
    (tol * scale)^(1/2) (``scale`` (B,) Å^2: the structure's largest variance), a lab axis."""
    flat = _project_out(centred, axis[batch])
    c = scatter_sum(flat.unsqueeze(-1) * flat.unsqueeze(-2), batch, num_graphs)
    lam = torch.linalg.eigvalsh(c)  # ascending: 0 (along the axis) and the plane's two
    principal = top_eigenvector(c, lam[:, 2])
    anchor, found = farthest(flat, batch, num_graphs, (tol * scale).sqrt())
    simple = (lam[:, 2] - lam[:, 1]) > tol * scale
    e2 = torch.where(simple[:, None], principal, torch.where(found[:, None], anchor, _lab_normal(axis)))
    return _unit(_project_out(e2, axis))


def base_frames(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                tol: float = 1e-6) -> torch.Tensor:
    """(B,3,3) one right-handed frame per structure (columns e1, e2, e3; see the module docstring);
    cell (B,3,3) Å, pbc (B,3) bool."""
    dtype = pos.dtype
    counts = scatter_sum(torch.ones_like(pos[:, 0]), batch, num_graphs).clamp(min=1.0)
    centred = pos - (scatter_sum(pos, batch, num_graphs) / counts[:, None])[batch]

    # molecules: principal axes of the centred positions
    c = scatter_sum(centred.unsqueeze(-1) * centred.unsqueeze(-2), batch, num_graphs)
    lam = torch.linalg.eigvalsh(c)  # ascending
    spread = lam[:, 2]
    simple_top = (lam[:, 2] - lam[:, 1]) > tol * spread
    simple_bottom = (lam[:, 1] - lam[:, 0]) > tol * spread
    far, found = farthest(centred, batch, num_graphs, (tol * spread).sqrt())
    x_axis = torch.eye(3, dtype=dtype, device=pos.device)[0].expand(num_graphs, 3)
    # e1: the top axis if simple; oblate: e1 is in the degenerate plane (from the bottom axis below);
    # spherical: towards the farthest atom
    e1 = torch.where(simple_top[:, None], top_eigenvector(c, lam[:, 2]),
                     torch.where(found[:, None], far, x_axis))
    e2 = second_axis(e1, centred, batch, num_graphs, tol, spread)
    prolate_frame = torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-1)
    normal = top_eigenvector(c, lam[:, 0])
    in_plane = second_axis(normal, centred, batch, num_graphs, tol, spread)
    oblate_frame = torch.stack([in_plane, torch.linalg.cross(normal, in_plane), normal], dim=-1)
    oblate = ~simple_top & simple_bottom
    molecule = torch.where(oblate[:, None, None], oblate_frame, prolate_frame)

    # periodic: Gram-Schmidt of the periodic lattice vectors, or a wire's axis
    axes = periodic_axes(cell.to(dtype), pbc)
    periodic = pbc.reshape(-1, 3).to(torch.bool).sum(-1)
    a1, a2 = axes[:, 0], axes[:, 1]
    cell_frame = torch.stack([a1, a2, torch.linalg.cross(a1, a2)], dim=-1)
    w2 = second_axis(a1, centred, batch, num_graphs, tol, spread)
    wire_frame = torch.stack([a1, w2, torch.linalg.cross(a1, w2)], dim=-1)
    frames = torch.where((periodic >= 2)[:, None, None], cell_frame,
                         torch.where((periodic == 1)[:, None, None], wire_frame, molecule))
    return frames


def structure_frames(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, batch: torch.Tensor,
                     num_graphs: int, num_frames: int = 4, tol: float = 1e-6) -> torch.Tensor:
    """(B, F, 3, 3) the frames of every structure: its base frame with the axes' signs flipped by
    the first ``num_frames`` patterns (4: the rotations, SO(3); 8: with reflections, O(3))."""
    if num_frames != 4 and num_frames != 8:
        raise ValueError("num_frames must be 4 (SO(3)) or 8 (O(3)), not " + str(num_frames))
    base = base_frames(pos, cell, pbc, batch, num_graphs, tol)
    return base.unsqueeze(1) * sign_patterns(num_frames, base.dtype, base.device)[None, :, None, :]


def sign_patterns(num_frames: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(F,3) the axes' signs of frame k: s1, s2 from the bits of k, s3 = s1 s2 for k < 4 (determinant
    +1: the rotations) and -s1 s2 for k >= 4 (the reflections)."""
    k = torch.arange(num_frames, device=device)
    s1 = 1 - 2 * (k % 2)
    s2 = 1 - 2 * ((k // 2) % 2)
    s3 = s1 * s2 * (1 - 2 * (k // 4))
    return torch.stack([s1, s2, s3], dim=-1).to(dtype)

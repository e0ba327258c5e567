"""Radius neighbour lists with periodic images: vesin (a cell list, on the tensors' device: its CUDA
path for CUDA tensors), and an all-pairs torch path (TorchScript-compatible, for exported models and
as the fallback where vesin's CUDA path is not available).

All return a *full* list (each pair in both directions) as ``(source, target, shifts)`` with
the convention of docs/design.md: the edge vector is ``pos[target] - pos[source] + shifts @ cell``,
``shifts`` integer image offsets, and no self pair at zero shift.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch


def filler_box(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """The cell (3,3) with its non-periodic rows replaced by orthonormal filler, so that a molecule's
    zero cell or a slab's missing vacuum vector never makes a singular box. Shifts along
    non-periodic directions are always zero, so the filler never shows in a neighbour list.
    (TorchScript-compatible: the exported models' neighbour search uses it.)"""
    cell = cell.reshape(3, 3).double()
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device)
    n_periodic = int(pbc.sum())
    if n_periodic == 3:
        return cell
    if n_periodic == 0:
        return eye
    periodic: List[int] = []
    free: List[int] = []
    for k in range(3):
        if bool(pbc[k]):
            periodic.append(k)
        else:
            free.append(k)
    rows = [cell[0], cell[1], cell[2]]
    if n_periodic == 2:
        normal = torch.linalg.cross(cell[periodic[0]], cell[periodic[1]])
        rows[free[0]] = normal / normal.norm().clamp(min=1e-300)
    else:
        a = cell[periodic[0]] / cell[periodic[0]].norm().clamp(min=1e-300)
        trial = eye[int(torch.argmin(a.abs()))]
        b = torch.linalg.cross(a, trial)
        b = b / b.norm()
        rows[free[0]] = b
        rows[free[1]] = torch.linalg.cross(a, b)
    box = torch.stack(rows)
    if bool(torch.linalg.det(box) < 0):  # keep a right-handed box; flips a filler row only
        rows[free[0]] = -rows[free[0]]
        box = torch.stack(rows)
    return box


def neighbor_list_numpy(pos, cell, pbc, cutoff: float):
    """Full neighbour list of one structure on CPU (vesin).

    Args:
        pos: (N,3) Å. cell: (3,3) Å, rows are lattice vectors. pbc: (3,) bool. cutoff: Å.
    Returns:
        source (E,), target (E,) int64 and shifts (E,3) int64.
    """
    from vesin import NeighborList

    pos = np.ascontiguousarray(pos, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if len(pos) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64)
    box = filler_box(torch.from_numpy(cell), torch.from_numpy(pbc)).numpy() if pbc.any() else np.zeros((3, 3))
    i, j, s = NeighborList(cutoff=float(cutoff), full_list=True).compute(pos, box, pbc.tolist(), "ijS")
    return i.astype(np.int64), j.astype(np.int64), s.astype(np.int64)


def closest_pair(pos, cell, pbc, within: float):
    """The closest pair of atoms (periodic images included) nearer than ``within`` Å, as
    ``(i, j, shift (3,) int, distance Å)``, or None. The one distance check of data validation and
    MD guards. pos (N,3), cell (3,3), pbc (3,): array-likes."""
    pos = np.asarray(pos, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    if len(pos) < 2 and not pbc.any():
        return None
    # search at >= 1 Å: a cell list binned at 0.1 Å would have ~1e6 bins per 10 Å cell
    i, j, s = neighbor_list_numpy(pos, cell, pbc, max(within, 1.0))
    if not len(i):
        return None
    d = np.linalg.norm(pos[j] - pos[i] + s @ cell, axis=1)
    k = int(np.argmin(d))
    return (int(i[k]), int(j[k]), s[k], float(d[k])) if d[k] < within else None


def neighbor_list_vesin(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full neighbour list of one structure by vesin on the tensors' own device (CPU or CUDA).

    Args:
        pos: (N,3) Å. cell: (3,3) Å, rows are lattice vectors. pbc: (3,) bool. cutoff: Å.
    Returns:
        source (E,), target (E,) and shifts (E,3), int64 tensors on ``pos.device``.
    """
    from vesin import NeighborList

    device = pos.device
    pbc = pbc.reshape(3).to(device=device, dtype=torch.bool)
    if pos.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)
    cell = cell.detach().reshape(3, 3).to(device=device, dtype=torch.float64)
    box = filler_box(cell, pbc) if bool(pbc.any()) else torch.zeros_like(cell)
    i, j, s = NeighborList(cutoff=float(cutoff), full_list=True).compute(
        pos.detach().to(torch.float64).contiguous(), box.contiguous(), pbc, "ijS")
    return i.to(torch.long), j.to(torch.long), s.to(torch.long)


def _image_range(box: torch.Tensor, pbc: torch.Tensor, cutoff: float) -> List[int]:
    """How many images each way, per direction, can hold a neighbour within the cutoff.

    ``box`` is the cell with non-periodic rows replaced by filler (:func:`filler_box`), so it is
    invertible for slabs and wires too; its periodic plane spacings are those of the cell.
    """
    inv = torch.linalg.inv(box.double())
    ranges: List[int] = []
    for k in range(3):
        ranges.append(int(math.ceil(cutoff * float(torch.linalg.norm(inv[:, k])))) if bool(pbc[k]) else 0)
    return ranges


def neighbor_list_torch(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float,
                        chunk_pairs: int = 1 << 24) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full neighbour list of one structure, computed with torch on the tensors' device.

    All pairs over all images that can lie within the cutoff (after wrapping into the cell),
    processed in chunks of at most ``chunk_pairs`` pair-images: O(N^2) work, which on a GPU beats
    a cell list for the structure sizes of training batches. Same outputs as the numpy path,
    as torch tensors on ``pos.device``. TorchScript-compatible (exported models search with it).
    """
    device = pos.device
    pos = pos.detach().double()
    n = pos.shape[0]
    pbc = pbc.reshape(3).to(torch.bool)
    cell = cell.detach().double().reshape(3, 3)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if n == 0:
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)
    wrap = torch.zeros(n, 3, dtype=torch.float64, device=device)
    ranges = [0, 0, 0]
    if bool(pbc.any()):
        box = filler_box(cell, pbc)
        frac = pos @ torch.linalg.inv(box)
        wrap = torch.where(pbc, torch.floor(frac), torch.zeros_like(frac))
        pos = pos - wrap @ cell
        ranges = _image_range(box, pbc, cutoff)
    grids = [torch.arange(-r, r + 1, device=device, dtype=torch.float64) for r in ranges]
    images = torch.stack(torch.meshgrid(grids, indexing="ij"), dim=-1).reshape(-1, 3)
    offsets = images @ cell  # (M,3)
    cut2 = float(cutoff) ** 2
    rows_per_chunk = max(1, chunk_pairs // max(1, n * images.shape[0]))
    src_all: List[torch.Tensor] = []
    dst_all: List[torch.Tensor] = []
    img_all: List[torch.Tensor] = []
    is_zero_image = images.abs().sum(-1) == 0
    for start in range(0, n, rows_per_chunk):
        src = torch.arange(start, min(n, start + rows_per_chunk), device=device)
        # vec[s, t, m] = pos[t] + offsets[m] - pos[s]
        vec = pos[None, :, None, :] + offsets[None, None] - pos[src][:, None, None, :]
        d2 = (vec * vec).sum(-1)
        keep = d2 < cut2  # strictly inside, as vesin and ASE
        self_pair = (src[:, None] == torch.arange(n, device=device)[None, :])[:, :, None] & is_zero_image[None, None, :]
        keep = keep & ~self_pair
        found = keep.nonzero()
        src_all.append(src[found[:, 0]])
        dst_all.append(found[:, 1])
        img_all.append(found[:, 2])
    source, target, image = torch.cat(src_all), torch.cat(dst_all), torch.cat(img_all)
    shifts = images[image] - wrap[target] + wrap[source]
    return source, target, shifts.round().long()


def _lexsort(keys: List[torch.Tensor]) -> torch.Tensor:
    """Indices that sort by keys[0], then keys[1], ... (most significant first), stably."""
    order = torch.arange(keys[0].shape[0], device=keys[0].device)
    for k in range(len(keys) - 1, -1, -1):
        order = order[torch.sort(keys[k][order], stable=True).indices]
    return order


def cap_neighbors(source: torch.Tensor, target: torch.Tensor, distance: torch.Tensor,
                  shifts: torch.Tensor, max_neighbors: int) -> torch.Tensor:
    """Indices of the edges to keep so that each target atom has its ``max_neighbors`` nearest.

    Ties are broken deterministically: by distance rounded to 1e-8 Å, then source index, then the
    image shift, so the same structure always gives the same graph whatever order the neighbour
    search returned. The kept indices come sorted by (target, distance, source, shift).
    """
    if source.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=source.device)
    d = torch.round(distance.double() * 1e8)
    order = _lexsort([target, d, source, shifts[:, 0], shifts[:, 1], shifts[:, 2]])
    t_sorted = target[order]
    first = torch.searchsorted(t_sorted, t_sorted, side="left")
    rank = torch.arange(order.numel(), device=order.device) - first
    return order[rank < max_neighbors]

"""Edge vectors recomputed from positions and cells, so autograd reaches them (forces, stress)."""

from __future__ import annotations

from typing import Optional

import torch


def edge_vectors(pos: torch.Tensor, cell: torch.Tensor, edge_index: torch.Tensor,
                 cell_shifts: torch.Tensor, batch: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``pos[target] - pos[source] + cell_shifts @ cell`` for every edge.

    Args:
        pos: (N,3) Å. cell: (B,3,3) or (3,3) Å. edge_index: (2,E) [source, target].
        cell_shifts: (E,3) integer image offsets. batch: (N,) structure of each atom (None: one).
    Returns:
        (E,3) Å, in the dtype of ``pos``.
    """
    source, target = edge_index[0], edge_index[1]
    cell = cell.reshape(-1, 3, 3).to(pos.dtype)
    shifts = cell_shifts.to(pos.dtype)
    if cell.shape[0] == 1:
        offset = shifts @ cell[0]
    else:
        assert batch is not None, "edge_vectors: a batch of several cells needs the batch vector"
        edge_cell = cell[batch[source]]  # (E,3,3)
        offset = torch.einsum("ek,ekj->ej", shifts, edge_cell)
    return pos[target] - pos[source] + offset

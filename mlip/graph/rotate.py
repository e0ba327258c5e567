"""Rigid rotations of a structure or a batch, targets included: the one home of "turn the data"
(physics checks, rotation augmentation, TransIP's alignment loss)."""

from __future__ import annotations

import torch

VECTORS = ("forces", "velocities", "displacement", "next_velocities")  # per-atom (N,3) fields that turn with the structure


def rotate(data, rotations: torch.Tensor):
    """A copy of ``data`` (an AtomicData or a Batch) with structure b turned by ``rotations[b]``
    ((B,3,3), or one (3,3) for all): positions, cell, and the vectors and targets present (forces,
    velocities, a forecaster's displacement and next_velocities) and stress (R σ R^T). The graph stays
    valid: image shifts are in cell units."""
    out = data.clone()
    cells = data.cell.reshape(-1, 3, 3)
    r = rotations.to(data.pos.dtype)
    if r.dim() == 2:
        r = r.expand(cells.shape[0], 3, 3)
    graph = data.batch if getattr(data, "batch", None) is not None else torch.zeros(
        data.pos.shape[0], dtype=torch.long, device=data.pos.device)
    per_atom = r[graph]
    out.pos = torch.einsum("nij,nj->ni", per_atom, data.pos)
    out.cell = torch.einsum("bkj,bij->bki", cells, r.to(cells.dtype)).reshape(data.cell.shape)
    for key in VECTORS:
        if key in data:
            out[key] = torch.einsum("nij,nj->ni", per_atom.to(data[key].dtype), data[key])
    if "stress" in data:
        rs = r.to(data.stress.dtype)
        out.stress = (rs @ data.stress.reshape(-1, 3, 3) @ rs.transpose(1, 2)).reshape(data.stress.shape)
    return out

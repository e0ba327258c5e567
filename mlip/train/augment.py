"""Random-rotation augmentation: a batch turned rigidly, structure by structure, with its targets.

A potential that is not exactly equivariant (EScAIP's direct forces, TransIP) learns the symmetry
from it; an exactly equivariant one gains nothing. The rotations are drawn from the split seed, the
optimizer step and the process rank, so a resumed run sees the same ones.
"""

from __future__ import annotations

import numpy as np
import torch

from mlip.nn.so3 import random_rotation


def rotate_batch(batch, rotations: torch.Tensor):
    """A copy of ``batch`` with structure b turned by ``rotations[b]`` (B,3,3): positions, cell,
    forces (vectors) and stress (R σ R^T). The graph stays valid: image shifts are in cell units."""
    out = batch.clone()
    r = rotations.to(batch.pos.dtype)
    per_atom = r[batch.batch]
    out.pos = torch.einsum("nij,nj->ni", per_atom, batch.pos)
    out.cell = torch.einsum("bkj,bij->bki", batch.cell.reshape(-1, 3, 3), r.to(batch.cell.dtype))
    if "forces" in batch:
        out.forces = torch.einsum("nij,nj->ni", per_atom.to(batch.forces.dtype), batch.forces)
    if "stress" in batch:
        rs = r.to(batch.stress.dtype)
        out.stress = rs @ batch.stress.reshape(-1, 3, 3) @ rs.transpose(1, 2)
    return out


def step_rotations(num: int, seed: int, step: int, rank: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(num,3,3) uniformly random rotations determined by (seed, step, rank)."""
    state = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    return random_rotation(num, dtype=dtype, generator=torch.Generator().manual_seed(state))

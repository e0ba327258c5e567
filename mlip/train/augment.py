"""Random-rotation augmentation: a batch turned rigidly, structure by structure, with its targets.

A potential that is not exactly equivariant (EScAIP's direct forces, TransIP) learns the symmetry
from it; an exactly equivariant one gains nothing. The rotations are drawn from the split seed, the
optimizer step and the process rank, so a resumed run sees the same ones.
"""

from __future__ import annotations

import numpy as np
import torch

from mlip.graph.rotate import rotate
from mlip.nn.so3 import random_rotation

__all__ = ["rotate", "step_rotations"]


def step_rotations(num: int, seed: int, step: int, rank: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(num,3,3) uniformly random rotations determined by (seed, step, rank)."""
    state = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    return random_rotation(num, dtype=dtype, generator=torch.Generator().manual_seed(state))

"""The test structures (shipped in mlip.testing.structures) and the registered models the suite runs on."""

import torch

from mlip.models import build
from mlip.testing.structures import REFERENCE_ENERGIES, STRUCTURES, data, ethanol, randomized  # noqa: F401


def make(name, dtype=torch.float64, **overrides):
    """The "small" preset with random weights everywhere (mlip.testing.structures.randomized)."""
    torch.manual_seed(0)
    return randomized(build(name, preset="small", **overrides), dtype)

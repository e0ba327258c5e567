"""Embeddings of per-structure integers: total charge and spin multiplicity (OMol25); the size of
every per-element table."""

from __future__ import annotations

import torch
from torch import nn

NUM_ELEMENTS = 119  # per-element tables: atomic numbers 0..118


class ChargeSpinEmbedding(nn.Module):
    """(B,) charge in [-max_charge, max_charge] and (B,) multiplicity in [1, max_spin] -> (B, C)."""

    def __init__(self, channels: int, max_charge: int = 10, max_spin: int = 11):
        super().__init__()
        self.max_charge = max_charge
        self.max_spin = max_spin
        self.charge = nn.Embedding(2 * max_charge + 1, channels)
        self.spin = nn.Embedding(max_spin, channels)
        nn.init.zeros_(self.charge.weight)
        nn.init.zeros_(self.spin.weight)

    def forward(self, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        if bool((charge.abs() > self.max_charge).any()) or bool(((spin < 1) | (spin > self.max_spin)).any()):
            raise ValueError(f"charge must lie in [-{self.max_charge}, {self.max_charge}] and spin multiplicity in "
                             f"[1, {self.max_spin}]; got charges {charge.tolist()}, spins {spin.tolist()}")
        return self.charge(charge + self.max_charge) + self.spin(spin - 1)

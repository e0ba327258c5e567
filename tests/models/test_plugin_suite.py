"""The shipped physics suite on a potential defined here, outside the package, as a user's plugin
would be: a Potential subclass, not registered, run through mlip.testing.PotentialTests."""

import pytest
import torch
from torch import nn

from mlip.models.base import NUM_ELEMENTS, Potential
from mlip.nn import scatter_sum
from mlip.nn.radial import GaussianBasis, PolynomialEnvelope
from mlip.testing import PotentialTests, randomized


class PairPotential(Potential):
    """A two-body potential: e_i = sum over neighbours j of MLP(basis(r_ij), z_i, z_j) * envelope(r_ij)."""

    def __init__(self, cutoff: float = 4.0, width: int = 16, num_basis: int = 8):
        super().__init__(cutoff, None, None)
        self.embedding = nn.Embedding(NUM_ELEMENTS, width)
        self.basis = GaussianBasis(num_basis, cutoff)
        self.envelope = PolynomialEnvelope(cutoff)
        self.mlp = nn.Sequential(nn.Linear(num_basis + width, width), nn.SiLU(), nn.Linear(width, 1))

    @property
    def interaction_hops(self) -> int:
        return 1  # a pair potential: its energy sees the neighbours only

    def atom_energies(self, atomic_numbers, edge_index, edge_vec, batch, num_graphs, charge, spin):
        source, target = edge_index[0], edge_index[1]
        r = edge_vec.norm(dim=-1)
        pair = self.embedding(atomic_numbers[source]) * self.embedding(atomic_numbers[target])
        e = self.mlp(torch.cat([self.basis(r), pair.to(r.dtype)], dim=-1)).squeeze(-1) * self.envelope(r)
        return scatter_sum(e, target, atomic_numbers.shape[0])


class TestAPluginPotential(PotentialTests):
    @pytest.fixture
    def model(self):
        torch.manual_seed(0)
        return randomized(PairPotential())

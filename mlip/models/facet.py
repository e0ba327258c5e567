"""Facet: a steerable message-passing potential with spline radial functions and a spherical-grid
node update (Miklaucic et al., "Facet: highly efficient E(3)-equivariant networks for interatomic
potentials", 2025).

Node features x (N, S, C): spherical-harmonic coefficients of degree <= lmax (S = (lmax+1)^2),
C channels for every degree. Each block (mlip.nn.interaction.InteractionBlock, shared with TrajCast):

    message   m_ij = TP(W_pre x_j, Y(r_ij); w(r_ij))   tensor product with the edge harmonics;
              each path (l1, l2, l3) has its weight w(r) for each of ``radial_heads`` groups of
              channels: a cubic B-spline of r (the paper's, no radial MLP) or, with radial="mlp",
              MACE's MLP of a Bessel basis (the quickstart's: it learns faster per epoch); the first
              block's inputs are invariant (the element embedding), so it computes only the paths (0, l, l)
    aggregate x_i += W_post sum_j m_ij / avg_num_neighbors
    update    x_i += GridMLP(norm(x_i))                 project to a sphere grid, MLP per point, back
              x_i,0 += MLP_SiLU(norm(x_i)_0)            invariant channels through a SiLU MLP

The per-atom energy sums a readout of the invariant (l = 0) channels after every block: linear
after the inner blocks, an MLP after the last (MACE's layout; this project's choice for Facet).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mlip.models import register
from mlip.models.base import NUM_ELEMENTS, Potential
from mlip.nn import ChargeSpinEmbedding, spherical_harmonics
from mlip.nn.interaction import InteractionBlock


@register("facet")
class Facet(Potential):
    """Facet potential.

    Args:
        cutoff: Å. lmax: highest degree of node features and edge harmonics.
        channels: channels per degree. num_layers: interaction blocks. hidden: width of the MLPs
        (default 2 * channels). num_basis: B-spline coefficients per radial function.
        avg_num_neighbors: message normaliser (set from dataset statistics when training).
        radial_heads: groups of channels with their own radial splines (1 .. channels; more is
        more expressive and slower).
        charge_spin: add embeddings of total charge and spin multiplicity (OMol25).
        tensor_product: "cg" (Clebsch-Gordan, a radial weight per path) or "gaunt" (the Gaunt product
        in a 2D Fourier basis, mlip.nn.gaunt: radial weights per degree of the harmonics and of the
        output; the same parity-keeping paths, so no odd path such as the cross product, which the
        CG messages leave out too; the freedom per path is made up by the per-node linear layers
        before and after the message and the node update).
        correlation: 1, or nu = 2..4: add to every node update the products of each channel's feature
        with itself up to the power nu (body order nu + 1, MACE's correlation), by Gaunt powers.
        radial: "spline" (the paper's spline per path, num_basis coefficients) or "mlp" (an MLP,
        3 x 64 SiLU, of num_basis Bessel functions: mlip.nn.RadialMLP; in single 240 s runs of
        benchmarks/bench_train.py on 3BPA, force MAE 35.0 -> 23.7 meV/Å at 10% fewer epochs).
        species, repulsion, max_neighbors: see Potential.
    """

    # with Gaunt messages, also "gaunt_edge"; with the radial MLP, no "bspline"
    kernels = frozenset({"segment_sum", "bspline", "grid_mlp"})
    __jit_ignored_attributes__ = ["kernels"]  # set per instance; not part of the scripted model

    presets = {
        "small": dict(cutoff=4.0, lmax=2, channels=16, num_layers=2, hidden=32, num_basis=8, avg_num_neighbors=10.0,
                      radial_heads=2),
        # experiment=quickstart: small molecules on a 2-core CPU in 10 minutes; MACE's radial MLP
        # (learns faster per epoch than the splines on every molecule of benchmarks/bench_train.py --all)
        "quickstart": dict(cutoff=4.0, lmax=2, channels=32, num_layers=3, hidden=64, num_basis=8,
                           avg_num_neighbors=10.0, radial_heads=4, radial="mlp"),
        # sized like SevenNet-0 (0.84 M parameters, 5 layers, cutoff 5 Å) for MPtrj-scale materials
        "mp": dict(cutoff=5.0, lmax=2, channels=96, num_layers=5, hidden=192, num_basis=10, avg_num_neighbors=30.0,
                   radial_heads=1),
    }

    def __init__(self, cutoff: float = 5.0, lmax: int = 2, channels: int = 64, num_layers: int = 3,
                 hidden: Optional[int] = None, num_basis: int = 10, avg_num_neighbors: float = 20.0,
                 radial_heads: int = 1, charge_spin: bool = False, species=None, repulsion: Optional[str] = "zbl",
                 max_neighbors: Optional[int] = None, tensor_product: str = "cg", correlation: int = 1,
                 radial: str = "spline"):
        super().__init__(cutoff, max_neighbors, species, repulsion)
        hidden = hidden or 2 * channels
        self.lmax = lmax
        self.channels = channels
        kernels = Facet.kernels if radial == "spline" else Facet.kernels - {"bspline"}
        self.kernels = kernels | {"gaunt_edge"} if tensor_product == "gaunt" else kernels
        self.embedding = nn.Embedding(NUM_ELEMENTS, channels)
        self.charge_spin = ChargeSpinEmbedding(channels) if charge_spin else None
        self.blocks = nn.ModuleList([
            InteractionBlock(lmax, channels, hidden, cutoff, num_basis, avg_num_neighbors, radial_heads, tensor_product,
                       correlation, invariant_input=k == 0, radial=radial)
            for k in range(num_layers)
        ])
        # each block reads out an energy from its invariant channels: linear after every block but
        # the last, an MLP after the last (as MACE); all start at zero, so an untrained model
        # gives the reference energies
        for block in self.blocks[:-1]:
            block.readout = nn.Linear(channels, 1, bias=False)
            nn.init.zeros_(block.readout.weight)
        self.blocks[-1].readout = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.blocks[-1].readout[-1].weight)

    @property
    def interaction_hops(self) -> int:
        return len(self.blocks)  # one per message-passing block

    @property
    def last_layer(self) -> nn.Linear:
        return self.blocks[-1].readout[-1]

    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        r = edge_vec.norm(p=2, dim=-1)
        sh = spherical_harmonics(self.lmax, edge_vec)
        scalars = self.embedding(atomic_numbers).to(edge_vec.dtype)
        if self.charge_spin is not None:
            scalars = scalars + self.charge_spin(charge, spin).to(edge_vec.dtype)[batch]
        x = torch.cat([scalars.unsqueeze(1),
                       scalars.new_zeros(scalars.shape[0], (self.lmax + 1) * (self.lmax + 1) - 1, self.channels)], dim=1)
        energy = torch.zeros_like(scalars[:, 0])
        radial_basis = self.blocks[0].shared_basis(r)  # one cutoff and basis for all blocks
        for block in self.blocks:
            x = block(x, edge_index, sh, r, radial_basis)
            energy = energy + block.readout(x[:, 0]).squeeze(-1)
        return energy

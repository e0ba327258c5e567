"""eSCN: equivariant message passing with SO(2) convolutions in each edge's frame (Passaro and
Zitnick, "Reducing SO(3) Convolutions to SO(2) for Efficient Equivariant GNNs", 2023), with
EquiformerV2's edge-degree embedding.

Node features x (N, S, C): spherical-harmonic coefficients of degree <= lmax times C channels.
Each block, for every edge j -> i with direction u:

    rotate   x_j, x_i into the frame whose z axis is u (Wigner-D), keep |m| <= mmax
    convolve SO(2) linear over [x_j, x_i], gated by an invariant embedding of |r|, Z_i, Z_j
             -> product nonlinearity on a sphere grid -> SO(2) linear (gated)
    rotate   back, sum onto i / avg_num_neighbors
    update   x_i += W m_i;  x_i += GridMLP(norm(x_i))  (project to a sphere grid, MLP, back)

Initial features: element embedding on l = 0 plus the edge-degree embedding (the invariant edge
embedding as m = 0 coefficients, rotated out of each edge's frame and summed). Energy: an MLP of
the final l = 0 channels. Forces: the energy gradient (default), or a direct head (``direct_forces``)
that reads the l = 1 channels (equivariant, not conservative).

This project's choices (not the paper's): the grid nonlinearity inside the convolution and in the
node update is the degree-2 product of :class:`mlip.nn.GridProductMLP`, exactly equivariant on
its grid (a SiLU on a finite grid is equivariant only approximately), so the shared suite's 1e-8
checks hold; the node update reads norm(x + messages) rather than x and the message separately.
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
from torch import nn

from mlip.models import register
from mlip.models.base import NUM_ELEMENTS, Potential
from mlip.nn import (ChargeSpinEmbedding, EdgeDegreeEmbedding, EdgeEmbedding, GridProductMLP, SO3Linear, SO3RMSNorm,
                     scatter_sum)
from mlip.nn.so2 import EdgeFrame, SO2Linear
from mlip.nn.spherical_harmonics import l1_to_cartesian


class EscnBlock(nn.Module):
    """One SO(2) convolution + node update.
    forward(x, edge_index, D (E,K,S), edge_emb (E,H), envelope (E,)) -> x; each edge's message is
    scaled by the cutoff envelope, so neighbours enter and leave smoothly."""

    def __init__(self, lmax: int, mmax: int, channels: int, hidden: int, edge_hidden: int,
                 avg_num_neighbors: float):
        super().__init__()
        self.channels = channels
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.frame = EdgeFrame(lmax, mmax)
        self.conv_in = SO2Linear(lmax, mmax, 2 * channels, hidden)
        self.gate_in = nn.Linear(edge_hidden, self.conv_in.num_gates * 2 * channels)
        self.grid = GridProductMLP(lmax, hidden, hidden)
        self.conv_out = SO2Linear(lmax, mmax, hidden, channels)
        self.gate_out = nn.Linear(edge_hidden, self.conv_out.num_gates * hidden)
        self.post = SO3Linear(lmax, channels, channels, bias=False)
        self.norm = SO3RMSNorm(lmax, channels)
        self.update = GridProductMLP(lmax, channels, 2 * channels)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, d: torch.Tensor, edge_emb: torch.Tensor,
                envelope: torch.Tensor):
        source, target = edge_index[0], edge_index[1]
        pair = torch.cat([x.index_select(0, source), x.index_select(0, target)], dim=2)  # (E, S, 2C)
        h = self.conv_in(self.frame.into(d, pair), self.gate_in(edge_emb))  # (E, K, hidden)
        full = self.frame.out_of(d, h)  # back to (E, S, hidden) to apply the sphere-grid MLP
        h = self.grid(full)
        h = self.conv_out(self.frame.into(d, h), self.gate_out(edge_emb))  # (E, K, C)
        messages = self.frame.out_of(d, h) * envelope[:, None, None]
        x = x + self.post(scatter_sum(messages, target, x.shape[0]) / self.avg_num_neighbors)
        return x + self.update(self.norm(x))


@register("escn")
class ESCN(Potential):
    """eSCN potential.

    Args:
        cutoff: Å. lmax: highest degree (up to 6). mmax: highest |m| kept in edge frames.
        channels: sphere channels. num_layers: blocks. hidden: channels inside the convolution
        (default = channels). edge_hidden: width of the invariant edge embedding. num_basis:
        Bessel functions. avg_num_neighbors: message normaliser (set from statistics in training).
        direct_forces: predict forces from the l = 1 channels instead of the energy gradient (faster,
        not energy-conserving; a warning says so). charge_spin, species, repulsion, max_neighbors: as Potential.
    """

    kernels = frozenset({"segment_sum", "edge_rotation", "grid_mlp"})

    presets = {
        "small": dict(cutoff=4.0, lmax=2, mmax=1, channels=8, num_layers=2, hidden=8, edge_hidden=16, num_basis=8,
                      avg_num_neighbors=10.0),
        # experiment=quickstart (rMD17 ethanol on a 2-core CPU)
        "quickstart": dict(cutoff=4.0, lmax=2, mmax=1, channels=16, num_layers=2, hidden=16, edge_hidden=32,
                           num_basis=8, avg_num_neighbors=10.0),
        # the paper's OC20 model: lmax 6, mmax 2, 128 sphere channels, 12 layers, 12 Å, 20 neighbours
        "oc20": dict(cutoff=12.0, lmax=6, mmax=2, channels=128, num_layers=12, hidden=128, edge_hidden=128,
                     num_basis=32, avg_num_neighbors=20.0, max_neighbors=20),
    }

    def __init__(self, cutoff: float = 6.0, lmax: int = 4, mmax: int = 2, channels: int = 64, num_layers: int = 4,
                 hidden: Optional[int] = None, edge_hidden: int = 64, num_basis: int = 16,
                 avg_num_neighbors: float = 20.0, direct_forces: bool = False, charge_spin: bool = False,
                 species=None, repulsion: Optional[str] = "zbl", max_neighbors: Optional[int] = None):
        super().__init__(cutoff, max_neighbors, species, repulsion)
        if not 0 <= mmax <= lmax:
            raise ValueError(f"mmax must lie in [0, lmax]; got mmax={mmax}, lmax={lmax}")
        hidden = hidden or channels
        self.lmax, self.channels = lmax, channels
        self.frame = EdgeFrame(lmax, mmax)
        self.embedding = nn.Embedding(NUM_ELEMENTS, channels)
        self.charge_spin = ChargeSpinEmbedding(channels) if charge_spin else None
        self.edge_embedding = EdgeEmbedding(edge_hidden, cutoff, num_basis)
        self.degree_embedding = EdgeDegreeEmbedding(lmax, mmax, edge_hidden, channels)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.blocks = nn.ModuleList([EscnBlock(lmax, mmax, channels, hidden, edge_hidden, avg_num_neighbors)
                                     for _ in range(num_layers)])
        self.readout = nn.Sequential(nn.Linear(channels, 2 * channels), nn.SiLU(), nn.Linear(2 * channels, 1))
        nn.init.zeros_(self.readout[-1].weight)
        # direct forces only (an Identity otherwise, so that every weight takes part in the loss)
        self.force_head: nn.Module = SO3Linear(1, channels, 1, bias=False) if direct_forces else nn.Identity()
        self.register_buffer("l1_to_xyz", l1_to_cartesian().float(), persistent=False)  # l = 1 -> (x, y, z)
        self.direct_forces = bool(direct_forces)
        self.roll_edges = False  # tests: turn each edge frame by a random angle about the edge
        if self.direct_forces:
            warnings.warn("eSCN with direct_forces=True predicts forces from a separate head: they are not the "
                          "gradient of the energy, so MD with them does not conserve energy", stacklevel=2)

    def _features(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                  batch: torch.Tensor, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        source, target = edge_index[0], edge_index[1]
        r = edge_vec.norm(p=2, dim=-1)
        roll: Optional[torch.Tensor] = None
        if self.roll_edges:
            roll = torch.rand(r.shape[0], dtype=r.dtype, device=r.device) * 6.283185307179586
        d = self.frame.matrices(edge_vec, roll)  # (E, K, S)
        edge_emb = self.edge_embedding(r, atomic_numbers[source], atomic_numbers[target])
        envelope = self.edge_embedding.basis.envelope(r)
        scalars = self.embedding(atomic_numbers).to(edge_vec.dtype)
        if self.charge_spin is not None:
            scalars = scalars + self.charge_spin(charge, spin).to(edge_vec.dtype)[batch]
        n, s = atomic_numbers.shape[0], (self.lmax + 1) * (self.lmax + 1)
        degree = self.degree_embedding(edge_emb, envelope, d.shape[1])  # m = 0 coefficients in the edge frames
        x = scatter_sum(self.frame.out_of(d, degree), target, n) / self.avg_num_neighbors
        x = x + torch.cat([scalars.unsqueeze(1), scalars.new_zeros(n, s - 1, self.channels)], dim=1)
        for block in self.blocks:
            x = block(x, edge_index, d, edge_emb, envelope)
        return x

    @property
    def interaction_hops(self) -> int:
        return len(self.blocks) + 1  # the edge-degree embedding gathers the neighbours, then one per block

    @property
    def last_layer(self) -> nn.Linear:
        return self.readout[-1]

    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        x = self._features(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        return self.readout(x[:, 0]).squeeze(-1)

    def atom_energies_and_forces(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                                 edge_vec: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                 spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self._features(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        l1 = self.force_head(x[:, :4])[:, 1:4, 0]  # (N, 3) l = 1 coefficients
        return self.readout(x[:, 0]).squeeze(-1), l1 @ self.l1_to_xyz.to(l1.dtype)

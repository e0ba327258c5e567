"""TrajCast: an equivariant message-passing forecaster of positions and velocities (Thiemann et al.,
"Force-Free Molecular Dynamics Through Autoregressive Equivariant Networks", 2025).

Node features x (N, S, C) as Facet's: spherical-harmonic coefficients of degree <= lmax, C channels
per degree. Inputs: the species embedding (l = 0) and each atom's velocity u (in units of the
training RMS), as its length in a Gaussian basis and its direction as harmonics Y(u) = |u|^l Y(û)
(polynomials in u: smooth through u = 0). Each layer:

    velocity  x_i += W_v TP(W_u x_i, Y(u_i); w(|u_i|))   the atom's own velocity, a node tensor product
                                                          whose path weights are an MLP of |u_i|
    interact  mlip.nn.interaction.InteractionBlock: messages TP(x_j, Y(r_ij); w(r_ij)) summed over
              neighbours, then the sphere-grid node update (exactly equivariant)

A readout of two l = 1 channels gives the displacement and the new velocity of each atom (in units
of their training RMS); the Forecaster base scales them and conserves the momentum. Velocities and
displacements are polar vectors and every path keeps parity, so the model is O(3)-equivariant.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mlip.models import register
from mlip.models.forecaster import Forecaster
from mlip.nn import NUM_ELEMENTS, EdgeTensorProduct, RadialMLP, SO3Linear, spherical_harmonics
from mlip.nn.interaction import InteractionBlock
from mlip.nn.spherical_harmonics import l1_to_cartesian, solid_harmonics


class VelocityCoupling(nn.Module):
    """x_i += W_v TP(W_u x_i, Y(u_i); w(|u_i|)): each atom's features coupled to its own velocity.
    forward(x (N,S,C), sh (N,S), speed (N,)) -> (N,S,C)."""

    def __init__(self, lmax: int, channels: int, max_speed: float, num_basis: int, radial_heads: int):
        super().__init__()
        self.tensor_product = EdgeTensorProduct(lmax, lmax, lmax)
        self.radial_heads = radial_heads
        self.weights = RadialMLP(self.tensor_product.num_paths * radial_heads, max_speed, num_basis,
                                 basis="gaussian")
        self.pre = SO3Linear(lmax, channels, channels, bias=False)
        self.post = SO3Linear(lmax, channels, channels, bias=False)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, speed: torch.Tensor) -> torch.Tensor:
        weights = self.weights(speed).reshape(speed.shape[0], self.tensor_product.num_paths, self.radial_heads)
        return x + self.post(self.tensor_product(self.pre(x), sh, weights))


@register("trajcast")
class TrajCast(Forecaster):
    """TrajCast forecaster.

    Args:
        cutoff: graph cutoff, Å.
        lmax: highest degree of node features and harmonics.
        channels: channels per degree.
        num_layers: velocity coupling + interaction layers.
        hidden: width of the MLPs (default 2 * channels).
        num_basis: radial basis functions (Bessel, in an MLP).
        speed_basis: Gaussians of the speed on [0, max_speed].
        max_speed: the speed basis's range, in units of the training velocity RMS.
        avg_num_neighbors: message normaliser (set from the training split).
        radial_heads: groups of channels with their own radial weights.
        species: atomic numbers the model is meant for (see Forecaster).
        max_neighbors: nearest neighbours kept per atom (see Forecaster).
        conserve_angular_momentum: also keep isolated molecules' angular momentum (see Forecaster).
    """

    presets = {
        # tests and quick trials
        "small": dict(cutoff=4.0, lmax=2, channels=16, num_layers=2, hidden=32, num_basis=8, speed_basis=8,
                      radial_heads=2),
        # a molecule's or a crystal's dynamics on a CPU within the benchmark's budget; one radial head:
        # the weights-first tensor product (162-atom quartz, 7068 edges, float32 forward on 2 cores:
        # 26 ms at 48 channels, against 96 ms for 32 channels in 4 heads)
        "default": dict(cutoff=5.0, lmax=2, channels=48, num_layers=3, hidden=96, num_basis=8, speed_basis=8,
                        radial_heads=1),
    }

    def __init__(self, cutoff: float = 5.0, lmax: int = 2, channels: int = 32, num_layers: int = 3,
                 hidden: Optional[int] = None, num_basis: int = 8, speed_basis: int = 8, max_speed: float = 5.0,
                 avg_num_neighbors: float = 10.0, radial_heads: int = 4, species=None,
                 max_neighbors: Optional[int] = None, conserve_angular_momentum: bool = False):
        super().__init__(cutoff, max_neighbors, species, conserve_angular_momentum)
        hidden = hidden or 2 * channels
        self.lmax = lmax
        self.channels = channels
        if lmax < 1:
            raise ValueError(f"lmax must be at least 1 (the outputs are vectors), got {lmax}")
        self.embedding = nn.Embedding(NUM_ELEMENTS, channels)
        self.velocity = nn.ModuleList([VelocityCoupling(lmax, channels, max_speed, speed_basis, radial_heads)
                                       for _ in range(num_layers)])
        self.blocks = nn.ModuleList([
            InteractionBlock(lmax, channels, hidden, cutoff, num_basis, avg_num_neighbors, radial_heads,
                             radial="mlp") for _ in range(num_layers)])
        self.readout = SO3Linear(lmax, channels, 2, bias=False)
        nn.init.zeros_(self.readout.weight)  # an untrained model forecasts no motion beyond the momentum's
        self.register_buffer("to_cartesian", l1_to_cartesian().float(), persistent=False)

    def node_outputs(self, atomic_numbers: torch.Tensor, velocities: torch.Tensor, edge_index: torch.Tensor,
                     edge_vec: torch.Tensor) -> torch.Tensor:
        dtype = edge_vec.dtype
        r = edge_vec.norm(p=2, dim=-1)
        sh = spherical_harmonics(self.lmax, edge_vec)
        velocity_sh = solid_harmonics(self.lmax, velocities)  # |u|^l Y_l(û)
        speed = velocities.norm(p=2, dim=-1)
        scalars = self.embedding(atomic_numbers).to(dtype)
        x = torch.cat([scalars.unsqueeze(1),
                       scalars.new_zeros(scalars.shape[0], (self.lmax + 1) * (self.lmax + 1) - 1, self.channels)], dim=1)
        radial_basis = self.blocks[0].shared_basis(r)  # one cutoff and basis for all blocks
        for coupling, block in zip(self.velocity, self.blocks):
            x = coupling(x, velocity_sh, speed)
            x = block(x, edge_index, sh, r, radial_basis)
        vectors = self.readout(x)[:, 1:4]  # (N, 3 m, 2): the l = 1 coefficients of the two outputs
        return torch.einsum("nmk,mi->nki", vectors, self.to_cartesian.to(dtype))

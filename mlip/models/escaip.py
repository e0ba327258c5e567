"""EScAIP: attention over each atom's neighbours (Qu and Krishnapriyan, "The Importance of Being
Scalable: Improving the Speed and Accuracy of Neural Network Interatomic Potentials Across Chemical
Domains", 2024).

Each atom's neighbour list is one sequence of K tokens (mlip.nn.neighbor_attention: slot 0 the atom
itself, then its neighbours nearest first, padded). A token is built from a Gaussian basis of the
distance, the embeddings of both atom types and both atoms' bond-orientational order (BOO); every
block runs

    message  = MLP([token features, edge features, node_i, node_j])
    edges   += MultiHeadAttention(message)     (keys weighted by the cutoff envelope, pads masked)
    nodes   += the attention output at slot 0
    nodes, edges += feed-forward (pre-norm residuals)

and reads out node (and, for direct forces, edge) features; the readouts of all blocks are
concatenated and projected, and an MLP gives per-atom energies. Forces are the energy gradient by
default; ``direct_forces=True`` predicts them as in the paper's code: per token a 3-vector times the
edge direction (component by component), summed over the neighbours and scaled by a per-atom
magnitude (and, this project's, by each neighbour's cutoff envelope, so that forces do not jump
when a neighbour crosses the cutoff). That head is not conservative, nor exactly equivariant unless
``frame_averaging`` is set (mlip.nn.frames); without it, rotation augmentation
(``data.augment_rotations``) trains it towards equivariance.

This project's choices (not the paper's): the BOO features are the per-degree power spectrum of the
envelope-weighted sum of the neighbours' spherical harmonics (the paper averages over neighbours,
which jumps when a neighbour enters the cutoff); keys carry the log of the cutoff envelope as an
attention bias, so a neighbour's weight goes smoothly to zero at the cutoff.
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch
from torch import nn

from mlip.models import register
from mlip.models.base import NUM_ELEMENTS, Potential
from mlip.nn import ChargeSpinEmbedding, scatter_sum, spherical_harmonics
from mlip.nn.feed_forward import feed_forward
from mlip.nn.neighbor_attention import NeighborAttention, neighbor_table, pad_to, to_slots
from mlip.nn.radial import GaussianBasis, PolynomialEnvelope


def projection(num_layers: int, hidden: int) -> nn.Sequential:
    """The readouts of the input and of every block, concatenated, to ``hidden``."""
    return nn.Sequential(nn.Linear((num_layers + 1) * hidden, hidden), nn.SiLU(), nn.RMSNorm(hidden))


class Tokens(nn.Module):
    """Token features (N, K, F) from the distance basis, atom types and BOO of both ends."""

    def __init__(self, num_basis: int, cutoff: float, atom_dim: int, boo_lmax: int, boo_dim: int, hidden: int):
        super().__init__()
        self.basis = GaussianBasis(num_basis, cutoff)
        self.distance = nn.Sequential(nn.Linear(num_basis, hidden), nn.SiLU())
        self.center = nn.Embedding(NUM_ELEMENTS, atom_dim)
        self.neighbor = nn.Embedding(NUM_ELEMENTS, atom_dim)
        self.boo_center = nn.Sequential(nn.Linear(boo_lmax + 1, boo_dim), nn.SiLU())
        self.boo_neighbor = nn.Sequential(nn.Linear(boo_lmax + 1, boo_dim), nn.SiLU())
        self.size = hidden + 2 * atom_dim + 2 * boo_dim

    def forward(self, r: torch.Tensor, z: torch.Tensor, index: torch.Tensor, boo: torch.Tensor) -> torch.Tensor:
        """r (N,K) Å (0 at slot 0 and pads); z (N,); index (N,K) neighbour atom; boo (N, L+1)."""
        k = index.shape[1]
        center = self.center(z).to(r.dtype)
        boo_center = self.boo_center(boo)
        return torch.cat([self.distance(self.basis(r)), center.unsqueeze(1).expand(-1, k, -1),
                          self.neighbor(z)[index].to(r.dtype), boo_center.unsqueeze(1).expand(-1, k, -1),
                          self.boo_neighbor(boo)[index]], dim=-1)


def readouts(hidden: int, edges: bool) -> Tuple[nn.Module, nn.Module]:
    """Node and edge readouts of one block (the edge one only for direct forces, else Identity)."""
    node = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
    return node, (nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU()) if edges else nn.Identity())


class GraphAttentionBlock(nn.Module):
    """Pre-norm attention + feed-forward over nodes (N,H) and edge tokens (N,K,H), then their readouts.
    ``edge_outputs`` False (the last block of a gradient-force model, whose edge tokens nothing
    reads): no edge feed-forward, so that every weight takes part in the loss."""

    def __init__(self, token_size: int, hidden: int, heads: int, angular_lmax: int, ffn_multiplier: int,
                 edge_readout: bool, edge_outputs: bool = True):
        super().__init__()
        self.norm_node, self.norm_edge = nn.RMSNorm(hidden), nn.RMSNorm(hidden)
        self.token = nn.Sequential(nn.Linear(token_size, hidden), nn.SiLU(), nn.RMSNorm(hidden))
        self.edge = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU())
        self.pair = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU())
        self.message = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.SiLU(), nn.RMSNorm(hidden))
        self.attention = NeighborAttention(hidden, heads, angular_lmax)
        self.norm_node_ffn, self.ffn_node = nn.RMSNorm(hidden), feed_forward(hidden, ffn_multiplier)
        self.edge_outputs = edge_outputs
        self.norm_edge_ffn: nn.Module = nn.RMSNorm(hidden) if edge_outputs else nn.Identity()
        self.ffn_edge: nn.Module = feed_forward(hidden, ffn_multiplier) if edge_outputs else nn.Identity()
        self.node_readout, self.edge_readout = readouts(hidden, edge_readout)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, tokens: torch.Tensor, index: torch.Tensor,
                bias: torch.Tensor,
                harmonics: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h, e = self.norm_node(nodes), self.norm_edge(edges)
        pair = self.pair(torch.cat([h.unsqueeze(1).expand(-1, index.shape[1], -1), h[index]], dim=-1))
        message = self.message(torch.cat([self.token(tokens), self.edge(e), pair], dim=-1))
        out = self.attention(message, bias, harmonics)
        nodes, edges = nodes + out[:, 0], edges + out
        nodes = nodes + self.ffn_node(self.norm_node_ffn(nodes))
        if self.edge_outputs:
            edges = edges + self.ffn_edge(self.norm_edge_ffn(edges))
        return nodes, edges, self.node_readout(nodes), self.edge_readout(edges)


@register("escaip")
class EScAIP(Potential):
    """EScAIP potential.

    Args:
        cutoff: Å. max_neighbors: neighbours per atom (nearest first; K = max_neighbors + 1 tokens, a
            fixed shape); None: all within the cutoff (K from the batch). hidden: token width.
        num_layers: attention blocks. heads: attention heads. num_basis: Gaussians of the distance.
        atom_dim, boo_dim: widths of the atom-type and BOO embeddings. boo_lmax: degrees of the BOO.
        angular_lmax: degrees of the frequency embedding in attention (0: none).
        ffn_multiplier: feed-forward width / hidden. atom_padding: pad the number of atoms to a
            multiple of this (0: no padding), so that a compiled model sees few distinct shapes.
        avg_num_neighbors: normalises the BOO sums (set from statistics in training).
        direct_forces: the non-conservative force head (a warning says so). charge_spin, species, repulsion,
            frame_averaging (direct forces only: it makes them exactly equivariant): as Potential.
    """

    kernels = frozenset({"segment_sum", "neighbor_attention"})

    presets = {
        "small": dict(cutoff=4.0, hidden=16, num_layers=2, heads=2, num_basis=8, atom_dim=8, boo_dim=8, boo_lmax=3,
                      angular_lmax=2, avg_num_neighbors=10.0, max_neighbors=24),
        # experiment=quickstart (rMD17 ethanol on a 2-core CPU): no cap, so the table is as wide as the
        # largest neighbour count (8) rather than padded to a fixed width
        "quickstart": dict(cutoff=4.0, hidden=64, num_layers=3, heads=4, num_basis=16, atom_dim=32, boo_dim=16,
                           boo_lmax=3, angular_lmax=2, avg_num_neighbors=8.0),
        # the paper's scale: hidden 512, 10 layers, 8 heads, 30 neighbours, cutoff 6 Å
        "paper": dict(cutoff=6.0, hidden=512, num_layers=10, heads=8, num_basis=64, atom_dim=128, boo_dim=64,
                      boo_lmax=3, angular_lmax=3, avg_num_neighbors=30.0, max_neighbors=30),
    }

    def __init__(self, cutoff: float = 6.0, hidden: int = 128, num_layers: int = 4, heads: int = 8,
                 num_basis: int = 32, atom_dim: int = 32, boo_dim: int = 32, boo_lmax: int = 3, angular_lmax: int = 2,
                 ffn_multiplier: int = 2, atom_padding: int = 0, avg_num_neighbors: float = 20.0,
                 direct_forces: bool = False, charge_spin: bool = False, species=None, repulsion: Optional[str] = "zbl",
                 max_neighbors: Optional[int] = None, frame_averaging: Optional[str] = None):
        if frame_averaging is not None and not direct_forces:
            raise ValueError("EScAIP with gradient forces is exactly equivariant already; frame_averaging is for its "
                             "direct-force head (direct_forces=True)")
        super().__init__(cutoff, max_neighbors, species, repulsion, frame_averaging)
        self.hidden, self.boo_lmax, self.angular_lmax = hidden, boo_lmax, angular_lmax
        self.atom_padding = int(atom_padding)
        self.slots_cap = int(max_neighbors or 0)  # K - 1 of the neighbour table (0: from the batch)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.envelope = PolynomialEnvelope(cutoff)
        self.tokens = Tokens(num_basis, cutoff, atom_dim, boo_lmax, boo_dim, hidden)
        self.input = nn.Sequential(nn.Linear(self.tokens.size, hidden), nn.SiLU(), nn.RMSNorm(hidden))
        self.input_ffn = feed_forward(hidden, 1)
        self.charge_spin = ChargeSpinEmbedding(hidden) if charge_spin else None
        self.direct_forces = bool(direct_forces)
        self.blocks = nn.ModuleList([GraphAttentionBlock(self.tokens.size, hidden, heads, angular_lmax, ffn_multiplier,
                                                         self.direct_forces, self.direct_forces or i < num_layers - 1)
                                     for i in range(num_layers)])
        self.node_readout, self.edge_readout = readouts(hidden, self.direct_forces)
        self.node_projection = projection(num_layers, hidden)
        self.energy_head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.energy_head[-1].weight)
        # direct forces (Identity placeholders otherwise, so that TorchScript compiles either model)
        self.edge_projection: nn.Module = nn.Identity()
        self.force_direction: nn.Module = nn.Identity()
        self.force_magnitude: nn.Module = nn.Identity()
        if self.direct_forces:
            self.edge_projection = projection(num_layers, hidden)
            self.force_direction = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3))
            self.force_magnitude = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
            warnings.warn("EScAIP with direct_forces=True predicts forces from a separate head: they are not the "
                          "gradient of the energy (MD does not conserve energy) and not exactly rotation-equivariant",
                          stacklevel=2)

    @property
    def exactly_equivariant(self) -> bool:
        return not self.direct_forces or self.num_frames > 0

    def _features(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                  batch: torch.Tensor, charge: torch.Tensor,
                  spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Node readout (Np,H), edge readout (Np,K,H), directions (Np,K,3) and attention bias (Np,K: log
        of the cutoff envelope, -inf at padding) of the padded neighbour table."""
        source, target = edge_index[0], edge_index[1]
        n = atomic_numbers.shape[0]
        n_pad = pad_to(n, self.atom_padding)
        z = torch.cat([atomic_numbers, atomic_numbers.new_zeros(n_pad - n)])  # padded atoms: Z = 0, no edges
        r = edge_vec.norm(p=2, dim=-1)
        u = edge_vec / r.unsqueeze(-1)  # unit vector from the neighbour (source) to the atom (target)
        env = self.envelope(r)
        slot, keep, k, index, valid, bias = neighbor_table(source, target, r, env, n_pad, self.slots_cap)
        # bond-orientational order: per-degree power of the envelope-weighted harmonics sum
        y = spherical_harmonics(max(self.boo_lmax, self.angular_lmax), u, normalize=False)
        s = (self.boo_lmax + 1) * (self.boo_lmax + 1)
        moments = scatter_sum(env.unsqueeze(-1) * y[:, :s], target, n_pad) / self.avg_num_neighbors
        degrees = [moments[:, l * l:(l + 1) * (l + 1)].pow(2).sum(-1) for l in range(self.boo_lmax + 1)]
        boo = torch.stack(degrees, dim=-1)
        r_slots = to_slots(r, slot, keep, n_pad, k)  # slot 0: the atom itself, r = 0
        harmonics: Optional[torch.Tensor] = None
        if self.angular_lmax > 0:
            harmonics = to_slots(y[:, :(self.angular_lmax + 1) * (self.angular_lmax + 1)], slot, keep, n_pad, k)
            harmonics = torch.cat([torch.ones_like(harmonics[..., :1]), harmonics[..., 1:]], dim=-1)
        directions = to_slots(u, slot, keep, n_pad, k)

        tokens = self.tokens(r_slots, z, index, boo)
        edges = self.input(tokens)
        edges = edges + self.input_ffn(edges)
        nodes = edges[:, 0]
        if self.charge_spin is not None:
            graph = torch.cat([batch, batch.new_zeros(n_pad - n)])
            nodes = nodes + self.charge_spin(charge, spin).to(r.dtype)[graph]
        node_readouts: List[torch.Tensor] = [self.node_readout(nodes)]
        edge_readouts: List[torch.Tensor] = [self.edge_readout(edges)]
        for block in self.blocks:
            nodes, edges, node_readout, edge_readout = block(nodes, edges, tokens, index, bias, harmonics)
            node_readouts.append(node_readout)
            edge_readouts.append(edge_readout)
        node_out = self.node_projection(torch.cat(node_readouts, dim=-1))
        edge_out = directions.new_zeros(0)
        if self.direct_forces:
            edge_out = self.edge_projection(torch.cat(edge_readouts, dim=-1)) * valid.unsqueeze(-1)
        return node_out, edge_out, directions, bias

    @property
    def interaction_hops(self) -> int:
        return len(self.blocks) + 1  # the input features (bond-orientational order) gather the neighbours, then one per block

    @property
    def last_layer(self) -> nn.Linear:
        return self.energy_head[-1]

    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        node_out, _, _, _ = self._features(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        return self.energy_head(node_out).squeeze(-1)[: atomic_numbers.shape[0]]

    def atom_energies_and_forces(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                                 edge_vec: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                 spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        node_out, edge_out, directions, bias = self._features(atomic_numbers, edge_index, edge_vec, batch, charge,
                                                               spin)
        n = atomic_numbers.shape[0]
        # the paper's head: a 3-vector per neighbour times its direction, component by component
        # (each neighbour's share times its cutoff envelope, this project's: forces smooth at the cutoff)
        envelope = bias.exp()  # each key's cutoff envelope: 1 at slot 0, 0 at padding
        per_edge = self.force_direction(edge_out) * directions * envelope.unsqueeze(-1)
        forces = per_edge[:, 1:].sum(dim=1) * self.force_magnitude(node_out)
        return self.energy_head(node_out).squeeze(-1)[:n], forces[:n]

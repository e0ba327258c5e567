"""EquiformerV2: the equivariant graph-attention transformer on eSCN's SO(2) convolutions (Liao,
Wood, Das and Smidt, "EquiformerV2: Improved Equivariant Transformer for Scaling to
Higher-Degree Representations", ICLR 2024).

Node features x (N, S, C): spherical-harmonic coefficients of degree <= lmax times C channels.
Initial features: an element embedding on l = 0 plus the edge-degree embedding (each edge's
invariant embedding as m = 0 coefficients in its frame, rotated out and summed). Each block:

    x = x + attention(norm(x))        equivariant graph attention (below)
    x = x + ffn(norm(x))              SO3Linear -> separable grid activation -> SO3Linear

with the separable layer norm (l = 0 and l > 0 normalised apart, mlip.nn.separable). Attention,
for every edge j -> i with direction u, in the frame whose z axis is u (|m| <= mmax kept):

    h      = SO2Linear([x_j, x_i]) gated by the invariant edge embedding (|r|, Z_i, Z_j)
    logits = a_h . SmoothLeakyReLU(LayerNorm(W h_{m=0}))   per head: the invariant m = 0 part,
             re-normalised (the paper's attention re-normalisation) before the activation
    alpha  = softmax over i's neighbours of the logits, each neighbour weighted by the cutoff
             envelope, with one more slot of logit 0 (alpha_ij = env_ij e^l_ij / (1 + sum_k env_ik e^l_ik)),
             so that a neighbour enters at the cutoff with weight 0 and the weights vary smoothly
    v      = SO2Linear(separable activation(h)) gated, split into heads
    out_i  = W sum_j alpha_ij v_ij      rotated back out of each edge's frame

Energy: an MLP of the final (normalised) l = 0 channels. Forces: the energy gradient (default),
or ``direct_forces``: the paper's force head, one more attention block with one output channel
whose l = 1 coefficients are the force (equivariant, not conservative; a warning says so).

This project's choices (not the paper's), for exactness: the grid nonlinearity of the separable
S^2 activation on l > 0 is the degree-2 product of mlip.nn.GridProductMLP, exactly equivariant on
its grid (a SiLU on a finite grid is equivariant only up to the grid's resolution; the physics
suite asks for 1e-8), and the activation runs on the full coefficients outside the edge frame, as
in this project's eSCN; the l > 0 norm has a floor (mlip.nn.separable); the radial basis is
Bessel functions with a polynomial envelope (the paper: Gaussians); the softmax has the
envelope-weighted null slot above (the paper multiplies nothing and lets neighbours enter with
their full weight).
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple

import torch
from torch import nn

from mlip.models import register
from mlip.models.base import Potential
from mlip.nn import ChargeSpinEmbedding, SO3Linear, scatter_sum
from mlip.nn.edge_embedding import NUM_ELEMENTS, EdgeDegreeEmbedding, EdgeEmbedding
from mlip.nn.separable import SeparableGridActivation, SeparableLayerNorm
from mlip.nn.so2 import EdgeFrame, SO2Linear, kept_coefficients
from mlip.nn.spherical_harmonics import l1_to_cartesian


def smooth_leaky_relu(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """EquiformerV2's activation of the attention features: (1+a)/2 x + (1-a)/2 x (2 sigmoid(x) - 1)."""
    return 0.5 * (1 + slope) * x + 0.5 * (1 - slope) * x * (2 * torch.sigmoid(x) - 1)


def envelope_softmax(logits: torch.Tensor, envelope: torch.Tensor, target: torch.Tensor,
                     num_nodes: int) -> torch.Tensor:
    """(E, H) weights env_ij exp(l_ij) / (1 + sum_k env_ik exp(l_ik)) over each target's edges
    (a softmax with one extra slot of logit 0): smooth in every edge, zero for an edge at the cutoff."""
    heads = logits.shape[1]
    top = torch.full((num_nodes, heads), 0.0, dtype=logits.dtype, device=logits.device)
    index = target.unsqueeze(1).expand(-1, heads)
    top = top.scatter_reduce(0, index, logits.detach(), reduce="amax", include_self=True)  # cancels exactly
    shift = top.index_select(0, target)
    weights = envelope.unsqueeze(1) * torch.exp(logits - shift)
    total = torch.exp(-top) + scatter_sum(weights, target, num_nodes)
    return weights / total.index_select(0, target)


class EquivariantGraphAttention(nn.Module):
    """forward(x (N, S, C), edge_index (2, E), d (E, K, S), edge_emb (E, H_e), envelope (E,)) ->
    (N, S, C_out): messages by SO(2) convolution of both ends in each edge's frame, multi-head
    attention weights from their invariant m = 0 part (module docstring)."""

    def __init__(self, lmax: int, mmax: int, channels: int, hidden: int, heads: int, alpha_channels: int,
                 value_channels: int, edge_hidden: int, channels_out: Optional[int] = None):
        super().__init__()
        self.heads, self.alpha_channels, self.value_channels = heads, alpha_channels, value_channels
        self.frame = EdgeFrame(lmax, mmax)
        self.conv_1 = SO2Linear(lmax, mmax, 2 * channels, hidden)
        self.gate_1 = nn.Linear(edge_hidden, self.conv_1.num_gates * 2 * channels)
        kept = kept_coefficients(lmax, mmax)
        self.register_buffer("m_zero", torch.tensor([kept.index(l * l + l) for l in range(lmax + 1)]),
                             persistent=False)
        self.alpha_in = nn.Linear((lmax + 1) * hidden, heads * alpha_channels)
        self.alpha_norm = nn.LayerNorm(alpha_channels)
        self.alpha_dot = nn.Parameter(torch.randn(heads, alpha_channels) / math.sqrt(alpha_channels))
        self.activation = SeparableGridActivation(lmax, hidden, hidden)
        self.conv_2 = SO2Linear(lmax, mmax, hidden, heads * value_channels)
        self.gate_2 = nn.Linear(edge_hidden, self.conv_2.num_gates * hidden)
        self.project = SO3Linear(lmax, heads * value_channels, channels_out or channels, bias=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, d: torch.Tensor, edge_emb: torch.Tensor,
                envelope: torch.Tensor) -> torch.Tensor:
        source, target = edge_index[0], edge_index[1]
        edges, nodes = source.shape[0], x.shape[0]
        pair = torch.cat([x.index_select(0, source), x.index_select(0, target)], dim=2)  # (E, S, 2C)
        h = self.conv_1(self.frame.into(d, pair), self.gate_1(edge_emb))  # (E, K, hidden)
        a = self.alpha_in(h.index_select(1, self.m_zero).flatten(1)).view(edges, self.heads, self.alpha_channels)
        logits = (smooth_leaky_relu(self.alpha_norm(a)) * self.alpha_dot.to(a.dtype)).sum(-1)  # (E, heads)
        alpha = envelope_softmax(logits, envelope, target, nodes)
        v = self.frame.into(d, self.activation(self.frame.out_of(d, h)))
        v = self.conv_2(v, self.gate_2(edge_emb))  # (E, K, heads * value_channels)
        kept = v.shape[1]
        v = (v.view(edges, kept, self.heads, self.value_channels) * alpha[:, None, :, None]).flatten(2)
        return self.project(scatter_sum(self.frame.out_of(d, v), target, nodes))


class _NoForceBlock(nn.Module):
    """The force block's place when forces are the energy gradient (no weights outside the loss)."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, d: torch.Tensor, edge_emb: torch.Tensor,
                envelope: torch.Tensor) -> torch.Tensor:
        return x


class EquiformerV2Block(nn.Module):
    """x + attention(norm(x)), then x + ffn(norm(x)); forward(x, edge_index, d, edge_emb, envelope) -> x."""

    def __init__(self, lmax: int, mmax: int, channels: int, hidden: int, heads: int, alpha_channels: int,
                 value_channels: int, ffn_hidden: int, edge_hidden: int):
        super().__init__()
        self.norm_1 = SeparableLayerNorm(lmax, channels)
        self.attention = EquivariantGraphAttention(lmax, mmax, channels, hidden, heads, alpha_channels, value_channels,
                                                   edge_hidden)
        self.norm_2 = SeparableLayerNorm(lmax, channels)
        self.ffn_in = SO3Linear(lmax, channels, ffn_hidden)
        self.ffn_activation = SeparableGridActivation(lmax, ffn_hidden, ffn_hidden)
        self.ffn_out = SO3Linear(lmax, ffn_hidden, channels, bias=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, d: torch.Tensor, edge_emb: torch.Tensor,
                envelope: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm_1(x), edge_index, d, edge_emb, envelope)
        return x + self.ffn_out(self.ffn_activation(self.ffn_in(self.norm_2(x))))


@register("equiformer_v2")
class EquiformerV2(Potential):
    """EquiformerV2 potential.

    Args:
        cutoff: Å. lmax: highest degree (up to 6). mmax: highest |m| kept in edge frames.
        channels: sphere channels. num_layers: blocks. hidden: channels of the first SO(2)
        convolution (the paper's attn_hidden_channels; default = channels). heads, alpha_channels,
        value_channels: attention heads, width of each head's logit features and of its values.
        ffn_hidden: the feed-forward width (default 2 x channels). edge_hidden: the invariant edge
        embedding's width. num_basis: Bessel functions. avg_num_neighbors: the edge-degree
        embedding's normaliser (set from statistics in training). direct_forces: the paper's
        force head instead of the energy gradient (not energy-conserving; a warning says so).
        charge_spin, species, repulsion, max_neighbors: as Potential.
    """

    kernels = frozenset({"segment_sum", "edge_rotation", "grid_mlp"})

    presets = {
        "small": dict(cutoff=4.0, lmax=2, mmax=1, channels=8, num_layers=1, hidden=8, heads=2, alpha_channels=4,
                      value_channels=4, ffn_hidden=16, edge_hidden=16, num_basis=8, avg_num_neighbors=10.0),
        # experiment=quickstart (rMD17 ethanol on a 2-core CPU)
        "quickstart": dict(cutoff=4.0, lmax=2, mmax=1, channels=32, num_layers=2, hidden=32, heads=4,
                           alpha_channels=8, value_channels=8, ffn_hidden=64, edge_hidden=32, num_basis=8,
                           avg_num_neighbors=10.0),
        # the paper's OC20 S2EF model "EquiformerV2 (31M)": lmax 4, mmax 2, 8 blocks, 128 sphere channels,
        # 64 attention hidden channels, 8 heads of 64 alpha and 16 value channels, feed-forward 128,
        # edge channels 128, 12 Å, 20 neighbours (its radial basis: 600 Gaussians; here 128 Bessel)
        "oc20": dict(cutoff=12.0, lmax=4, mmax=2, channels=128, num_layers=8, hidden=64, heads=8, alpha_channels=64,
                     value_channels=16, ffn_hidden=128, edge_hidden=128, num_basis=128, avg_num_neighbors=20.0,
                     max_neighbors=20),
    }

    def __init__(self, cutoff: float = 6.0, lmax: int = 4, mmax: int = 2, channels: int = 64, num_layers: int = 4,
                 hidden: Optional[int] = None, heads: int = 8, alpha_channels: int = 32, value_channels: int = 16,
                 ffn_hidden: Optional[int] = None, edge_hidden: int = 64, num_basis: int = 16,
                 avg_num_neighbors: float = 20.0, direct_forces: bool = False, charge_spin: bool = False,
                 species=None, repulsion: Optional[str] = "zbl", max_neighbors: Optional[int] = None):
        super().__init__(cutoff, max_neighbors, species, repulsion)
        if not 0 <= mmax <= lmax:
            raise ValueError(f"mmax must lie in [0, lmax]; got mmax={mmax}, lmax={lmax}")
        hidden = hidden or channels
        ffn_hidden = ffn_hidden or 2 * channels
        self.lmax, self.channels = lmax, channels
        self.frame = EdgeFrame(lmax, mmax)
        self.embedding = nn.Embedding(NUM_ELEMENTS, channels)
        self.charge_spin = ChargeSpinEmbedding(channels) if charge_spin else None
        self.edge_embedding = EdgeEmbedding(edge_hidden, cutoff, num_basis)
        self.degree_embedding = EdgeDegreeEmbedding(lmax, mmax, edge_hidden, channels)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.blocks = nn.ModuleList([
            EquiformerV2Block(lmax, mmax, channels, hidden, heads, alpha_channels, value_channels, ffn_hidden,
                              edge_hidden)
            for _ in range(num_layers)])
        self.norm = SeparableLayerNorm(lmax, channels)
        self.readout = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
        nn.init.zeros_(self.readout[-1].weight)
        # direct forces only (a placeholder otherwise, so that every weight takes part in the loss)
        self.force_block: nn.Module = (
            EquivariantGraphAttention(lmax, mmax, channels, hidden, heads, alpha_channels, value_channels, edge_hidden,
                                      channels_out=1) if direct_forces else _NoForceBlock())
        self.register_buffer("l1_to_xyz", l1_to_cartesian().float(), persistent=False)
        self.direct_forces = bool(direct_forces)
        self.roll_edges = False  # tests: turn each edge frame by a random angle about the edge
        if self.direct_forces:
            warnings.warn("EquiformerV2 with direct_forces=True predicts forces from a separate head: they are not "
                          "the gradient of the energy, so MD with them does not conserve energy", stacklevel=2)

    def _features(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                  batch: torch.Tensor, charge: torch.Tensor, spin: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (N, S, C) after the blocks and the final norm, d, edge_emb, envelope)."""
        source, target = edge_index[0], edge_index[1]
        r = edge_vec.norm(p=2, dim=-1)
        roll: Optional[torch.Tensor] = None
        if self.roll_edges:
            roll = torch.rand(r.shape[0], dtype=r.dtype, device=r.device) * 6.283185307179586
        d = self.frame.matrices(edge_vec, roll)  # (E, K, S)
        edge_emb = self.edge_embedding(r, atomic_numbers[source], atomic_numbers[target])
        envelope = self.edge_embedding.basis.envelope(r)
        n, s = atomic_numbers.shape[0], (self.lmax + 1) * (self.lmax + 1)
        scalars = self.embedding(atomic_numbers).to(edge_vec.dtype)
        if self.charge_spin is not None:
            scalars = scalars + self.charge_spin(charge, spin).to(edge_vec.dtype)[batch]
        x = scatter_sum(self.frame.out_of(d, self.degree_embedding(edge_emb, envelope, d.shape[1])), target, n)
        x = x / self.avg_num_neighbors + torch.cat([scalars.unsqueeze(1), scalars.new_zeros(n, s - 1, self.channels)],
                                                   dim=1)
        for block in self.blocks:
            x = block(x, edge_index, d, edge_emb, envelope)
        return self.norm(x), d, edge_emb, envelope

    @property
    def interaction_hops(self) -> int:
        return len(self.blocks) + 1  # the edge-degree embedding gathers the neighbours, then one per block

    @property
    def last_layer(self) -> nn.Linear:
        return self.readout[-1]

    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        x = self._features(atomic_numbers, edge_index, edge_vec, batch, charge, spin)[0]
        return self.readout(x[:, 0]).squeeze(-1)

    def atom_energies_and_forces(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                                 edge_vec: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                 spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, d, edge_emb, envelope = self._features(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        l1 = self.force_block(x, edge_index, d, edge_emb, envelope)[:, 1:4, 0]  # (N, 3) l = 1 coefficients
        return self.readout(x[:, 0]).squeeze(-1), l1 @ self.l1_to_xyz.to(l1.dtype)

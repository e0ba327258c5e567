"""Invariant edge embeddings shared by the SO(2)-convolution potentials (eSCN, EquiformerV2)."""

from __future__ import annotations

import torch
from torch import nn

from mlip.nn.embedding import NUM_ELEMENTS
from mlip.nn.radial import BesselBasis
from mlip.nn.so2 import kept_coefficients



class EdgeEmbedding(nn.Module):
    """(E, hidden) invariant edge embedding of the distance (Bessel basis with envelope) and the
    atomic numbers of both ends; zero at the cutoff (times the envelope)."""

    def __init__(self, hidden: int, cutoff: float, num_basis: int):
        super().__init__()
        self.basis = BesselBasis(num_basis, cutoff)
        self.source = nn.Embedding(NUM_ELEMENTS, hidden)
        self.target = nn.Embedding(NUM_ELEMENTS, hidden)
        self.radial = nn.Linear(num_basis, hidden)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())

    def forward(self, r: torch.Tensor, z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
        envelope = self.basis.envelope(r).unsqueeze(-1)
        h = self.radial(self.basis(r)) + self.source(z_source).to(r.dtype) + self.target(z_target).to(r.dtype)
        return self.mlp(h) * envelope  # vanishes smoothly at the cutoff


class EdgeDegreeEmbedding(nn.Module):
    """EquiformerV2's edge-degree embedding: each edge's invariant embedding becomes m = 0
    coefficients (one per degree and channel) in the edge's frame, scaled by the cutoff envelope.

    ``forward(edge_emb (E, H), envelope (E,), kept K) -> (E, K, C)``: compact edge-frame coefficients
    (mlip.nn.so2 layout, |m| <= mmax); the model rotates them out of the frame and sums them onto
    the receiving atoms. Its weights are a Linear's (H -> (lmax + 1) C) under the names they had
    inside eSCN (weight, bias).
    """

    def __init__(self, lmax: int, mmax: int, edge_hidden: int, channels: int):
        super().__init__()
        linear = nn.Linear(edge_hidden, (lmax + 1) * channels)
        self.weight, self.bias = linear.weight, linear.bias
        self.lmax, self.channels = lmax, channels
        kept = kept_coefficients(lmax, mmax)
        self.register_buffer("m_zero", torch.tensor([kept.index(l * l + l) for l in range(lmax + 1)]),
                             persistent=False)

    def forward(self, edge_emb: torch.Tensor, envelope: torch.Tensor, kept: int) -> torch.Tensor:
        # ``kept`` from the rotation matrices' shape (d.shape[1]), not a constant: torch.export then
        # sees one size for both
        degree = torch.nn.functional.linear(edge_emb, self.weight, self.bias).view(-1, self.lmax + 1, self.channels)
        compact = torch.zeros(edge_emb.shape[0], kept, self.channels, dtype=edge_emb.dtype,
                              device=edge_emb.device)
        return compact.index_copy(1, self.m_zero, degree * envelope[:, None, None])

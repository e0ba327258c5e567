"""Tensor product of neighbour features with edge spherical harmonics, with learned per-edge path
weights shared by groups ("heads") of channels.

For each path p = (l1, l2, l3) with l1 + l2 + l3 even (parity kept, so E(3)-equivariant), and
channel c in head h:
    out_l3[c] += w_p,h * sum_ab C_p[a, b, :] x_l1[a, c] Y_l2[b]
The couplings are contracted with Y first (one matrix product for all edges). Then one of two
orders, whichever was faster on a 2-core CPU for the sizes (``channels_first``):
  - paths first (many heads): apply every path to the channels (E, rows, C), weight per path and
    head, sum the rows of each output component;
  - weights first (few heads): fold the path weights and the sum over paths into one
    (S_out, S_in) matrix per edge and head, then apply it to the channels; no (E, rows, C) tensor.
With as many heads as channels this is the "uvu" product of NequIP / SevenNet; fewer heads have
fewer radial weights.
"""

from __future__ import annotations

import torch

from mlip.nn.constants import ExactBuffers
from mlip.nn.so3 import coupling


def parity_paths(lmax_in: int, lmax_sh: int, lmax_out: int) -> list[tuple[int, int, int]]:
    """All (l1, l2, l3) allowed by the triangle rule with l1 + l2 + l3 even."""
    return [(l1, l2, l3)
            for l1 in range(lmax_in + 1) for l2 in range(lmax_sh + 1) for l3 in range(lmax_out + 1)
            if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]


class EdgeTensorProduct(ExactBuffers):
    """forward(x (E, S_in, C), sh (E, S_sh), weights (E, P, H)) -> (E, S_out, C); H divides C."""

    def __init__(self, lmax_in: int, lmax_sh: int, lmax_out: int):
        super().__init__()
        self.paths = parity_paths(lmax_in, lmax_sh, lmax_out)
        s_in, s_sh, s_out = ((l + 1) ** 2 for l in (lmax_in, lmax_sh, lmax_out))
        rows = sum(2 * l3 + 1 for _, _, l3 in self.paths)
        table = torch.zeros(rows, s_in, s_sh, dtype=torch.float64)
        row_path = torch.zeros(rows, dtype=torch.long)
        gather_out = torch.zeros(s_out, rows, dtype=torch.float64)
        r = 0
        for p, (l1, l2, l3) in enumerate(self.paths):
            c = coupling(l1, l2, l3)  # (2l1+1, 2l2+1, 2l3+1), unit norm
            c = c * (2 * l3 + 1) ** 0.5  # each path contributes O(1) per output component
            n3 = 2 * l3 + 1
            table[r:r + n3, l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2] = c.permute(2, 0, 1)
            row_path[r:r + n3] = p
            gather_out[l3 * l3 + torch.arange(n3), r + torch.arange(n3)] = 1.0
            r += n3
        self.num_paths = len(self.paths)
        self.register_exact("table", table)
        self.register_buffer("row_path", row_path, persistent=False)
        self.register_exact("gather_out", gather_out)

    def channels_first(self, channels: int, heads: int) -> bool:
        """Paths first below 16 channels per head, weights first from 16 (lmax 2, 4000-6000 edges,
        forward + force backward + training backward, 2-core CPU: 8 per head (32 / 4) 2.1x faster
        paths first; 96 / 1 3.8x faster weights first; 16 (32 / 2) 1.4x faster weights first)."""
        return channels // heads < 16

    def edge_messages(self, x: torch.Tensor, source: torch.Tensor, sh: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        """Node features x (N, S_in, C) to the messages of edges from ``source`` (E,): the call the
        models make, shared with mlip.nn.gaunt.EdgeGauntProduct."""
        return self.forward(x.index_select(0, source), sh, weights)

    def invariant_messages(self, x: torch.Tensor, source: torch.Tensor, sh: torch.Tensor,
                           weights: torch.Tensor) -> torch.Tensor:
        """``edge_messages`` of features whose degrees l >= 1 are zero (a first layer's embeddings):
        reads x[:, 0] only. Only the paths (0, l, l) carry anything: out_l = w_p * Y_l * x_0, an
        outer product per edge, with no (E, rows, C) intermediate."""
        edges, channels, heads = sh.shape[0], x.shape[-1], weights.shape[-1]
        a0 = sh @ self.table[:, 0, :].t()  # (E, R): couplings with Y, input component l = 0
        w = weights.index_select(1, self.row_path)  # (E, R, H)
        b = torch.matmul(self.gather_out, a0.unsqueeze(-1) * w)  # (E, S_out, H)
        x0 = x[:, 0].index_select(0, source).view(edges, 1, heads, channels // heads)
        return (b.unsqueeze(-1) * x0).reshape(edges, b.shape[1], channels)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        edges, s_in, channels = x.shape
        heads = weights.shape[-1]
        rows = self.row_path.shape[0]
        a = torch.einsum("ris,es->eri", self.table, sh)  # (E, R, S_in): couplings contracted with Y
        w = weights.index_select(1, self.row_path)  # (E, R, H)
        if self.channels_first(channels, heads):
            t = torch.bmm(a, x)  # (E, R, C): every path's output components, unweighted
            t = (t.view(edges, rows, heads, channels // heads) * w.unsqueeze(-1)).view(edges, rows, channels)
            return torch.matmul(self.gather_out, t)  # (E, S_out, C): paths summed per output component
        # (E, S_out, S_in, H): weighted couplings summed over the paths of each output component
        aw = (a.unsqueeze(-1) * w.unsqueeze(2)).view(edges, rows, s_in * heads)  # (E, R, S_in*H)
        s_out = self.gather_out.shape[0]  # explicit sizes, not -1: a structure without edges works
        b = torch.matmul(self.gather_out, aw).view(edges, s_out, s_in, heads)  # summed per output component
        b = b.permute(0, 3, 1, 2).reshape(edges * heads, s_out, s_in)
        xh = x.view(edges, s_in, heads, channels // heads).transpose(1, 2).reshape(edges * heads, s_in,
                                                                                  channels // heads)
        out = torch.bmm(b, xh)  # (E*H, S_out, C/H)
        return out.view(edges, heads, s_out, channels // heads).transpose(1, 2).reshape(edges, s_out, channels)

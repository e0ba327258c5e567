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

``aggregate`` sums the messages at their receivers. With few heads it never makes the messages:
each edge's weighted couplings are one (S_out, S_in) matrix per head, built by a single matrix
product of the outer product weights x harmonics (E, P S_sh) with the couplings, and
mlip.kernels.block_aggregate applies them all as one block-sparse matrix (sparse BLAS on CPU).
"""

from __future__ import annotations

import torch

from mlip.kernels import block_aggregate
from mlip.kernels.block_sparse import sparse_product_available
from mlip.nn.constants import ExactBuffers
from mlip.nn.scatter import scatter_sum
from mlip.nn.so3 import coupling


def parity_paths(lmax_in: int, lmax_sh: int, lmax_out: int) -> list[tuple[int, int, int]]:
    """All (l1, l2, l3) allowed by the triangle rule with l1 + l2 + l3 even."""
    return [(l1, l2, l3)
            for l1 in range(lmax_in + 1) for l2 in range(lmax_sh + 1) for l3 in range(lmax_out + 1)
            if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0]


class _Outer(torch.autograd.Function):
    """(B, P), (B, S) -> (B, P, S) outer products, broadcast multiplied; the backward as batched
    matrix products, (B, P, S) @ (B, S, 1) and (B, 1, P) @ (B, P, S), instead of autograd's product
    and sum over (B, P, S) temporaries (14 000 edges, P S = 99: 4.8 against 7.7 ms forward and
    backward on the 2-core CPU); differentiable again (force training)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.unsqueeze(-1) * b.unsqueeze(-2)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = torch.bmm(grad, b.unsqueeze(-1)).squeeze(-1) if ctx.needs_input_grad[0] else None
        grad_b = torch.bmm(a.unsqueeze(-2), grad).squeeze(-2) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


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
        # (P S_sh, S_out S_in): path p's couplings with harmonic component s, summed per output component
        per_path = torch.zeros(self.num_paths, rows, dtype=torch.float64)
        per_path[row_path, torch.arange(rows)] = 1.0
        couplings = torch.einsum("pr,ar,rbs->psab", per_path, gather_out, table)
        self.register_exact("path_couplings", couplings.reshape(self.num_paths * s_sh, s_out * s_in), persistent=False)
        self.register_exact("invariant_couplings", couplings[:, :, :, 0].reshape(self.num_paths * s_sh, s_out),
                            persistent=False)

    def channels_first(self, channels: int, heads: int) -> bool:
        """Paths first below 16 channels per head, weights first from 16 (lmax 2, 4000-6000 edges,
        forward + force backward + training backward, 2-core CPU: 8 per head (32 / 4) 2.1x faster
        paths first; 96 / 1 3.8x faster weights first; 16 (32 / 2) 1.4x faster weights first)."""
        return channels // heads < 16

    def blocks_first(self, x: torch.Tensor, heads: int) -> bool:
        """Whether ``aggregate`` applies per-edge blocks (block_aggregate) rather than summing
        messages: with few heads (weights first), and in eval mode on CPU whatever the heads, where
        the sparse product beats the messages (Facet "quickstart", 8 channels per head, 1000 Si
        atoms: 0.36 against 0.53 s a step; in training the messages path is as fast)."""
        if not self.channels_first(x.shape[-1], heads):
            return True
        if not torch.jit.is_scripting():
            return not self.training and sparse_product_available(x)
        return False

    def edge_messages(self, x: torch.Tensor, source: torch.Tensor, sh: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
        """Node features x (N, S_in, C) to the messages of edges from ``source`` (E,): the call the
        models make, shared with mlip.nn.gaunt.EdgeGauntProduct."""
        return self.forward(x.index_select(0, source), sh, weights)

    def aggregate(self, x: torch.Tensor, edge_index: torch.Tensor, sh: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
        """The messages of the edges (source, target) = edge_index summed at each target:
        (N, S_in, C) -> (N, S_out, C)."""
        source, target = edge_index[0], edge_index[1]
        edges, heads = sh.shape[0], weights.shape[-1]
        if not self.blocks_first(x, heads):
            return scatter_sum(self.edge_messages(x, source, sh, weights), target, x.shape[0])
        blocks = self.edge_blocks(sh, weights, self.path_couplings).view(edges, heads, self.gather_out.shape[0],
                                                                         self.table.shape[1])
        return self._per_head(blocks, x, edge_index)

    def aggregate_invariant(self, x: torch.Tensor, edge_index: torch.Tensor, sh: torch.Tensor,
                            weights: torch.Tensor) -> torch.Tensor:
        """``aggregate`` of features whose degrees l >= 1 are zero (a first layer's embeddings):
        reads x[:, 0] only, through the paths (0, l, l)."""
        edges, heads = sh.shape[0], weights.shape[-1]
        couplings = self.invariant_couplings
        blocks = self.edge_blocks(sh, weights, couplings).view(edges, heads, couplings.shape[1], 1)
        channels = x.shape[-1]
        if not self.blocks_first(x, heads):  # small heads: the outer products per edge, summed
            x0 = x[:, 0].index_select(0, edge_index[0]).view(edges, heads, 1, channels // heads)
            messages = (blocks * x0).transpose(1, 2).reshape(edges, couplings.shape[1], channels)
            return scatter_sum(messages, edge_index[1], x.shape[0])
        return self._per_head(blocks, x[:, :1], edge_index)

    def edge_blocks(self, sh: torch.Tensor, weights: torch.Tensor, couplings: torch.Tensor) -> torch.Tensor:
        """Each edge's and head's weighted couplings, (E, H, K) for ``couplings`` (P S_sh, K): the
        outer product weights x harmonics times the couplings, one matrix product."""
        edges, heads = sh.shape[0], weights.shape[-1]
        if torch.jit.is_scripting():
            outer = weights.transpose(1, 2).unsqueeze(-1) * sh.unsqueeze(1).unsqueeze(1)  # (E, H, P, S_sh)
        else:
            per_head = weights.transpose(1, 2).reshape(edges * heads, weights.shape[1])
            outer = _Outer.apply(per_head, sh if heads == 1 else sh.repeat_interleave(heads, dim=0))
        # explicit sizes, not -1: a structure without edges works
        return (outer.reshape(edges * heads, couplings.shape[0]) @ couplings).view(edges, heads, couplings.shape[1])

    def _per_head(self, blocks: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Each head's (E, S_out, S_in) blocks applied to its channels of x (N, S_in, C)."""
        heads, per_head = blocks.shape[1], x.shape[-1] // blocks.shape[1]
        outs = [block_aggregate(blocks[:, h], x[:, :, h * per_head:(h + 1) * per_head], edge_index, x.shape[0])
                for h in range(heads)]
        return outs[0] if heads == 1 else torch.cat(outs, dim=-1)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        edges, s_in, channels = x.shape
        heads = weights.shape[-1]
        if self.channels_first(channels, heads):
            rows = self.row_path.shape[0]
            a = torch.einsum("ris,es->eri", self.table, sh)  # (E, R, S_in): couplings contracted with Y
            w = weights.index_select(1, self.row_path)  # (E, R, H)
            t = torch.bmm(a, x)  # (E, R, C): every path's output components, unweighted
            t = (t.view(edges, rows, heads, channels // heads) * w.unsqueeze(-1)).view(edges, rows, channels)
            return torch.matmul(self.gather_out, t)  # (E, S_out, C): paths summed per output component
        # (E H, S_out, S_in): weighted couplings summed over the paths of each output component
        s_out = self.gather_out.shape[0]
        b = self.edge_blocks(sh, weights, self.path_couplings).view(edges * heads, s_out, s_in)
        xh = x.view(edges, s_in, heads, channels // heads).transpose(1, 2).reshape(edges * heads, s_in,
                                                                                  channels // heads)
        out = torch.bmm(b, xh)  # (E*H, S_out, C/H)
        return out.view(edges, heads, s_out, channels // heads).transpose(1, 2).reshape(edges, s_out, channels)

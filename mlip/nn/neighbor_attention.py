"""Each atom's neighbours as one short padded sequence, and multi-head attention within it (EScAIP).

Layout: (N, K, ...) with slot 0 the atom itself and slots 1..K-1 its neighbours, nearest first,
zero-padded; ``neighbor_slots`` assigns every edge its slot and ``to_slots`` moves per-edge values
there. With a fixed ``max_neighbors`` (and atoms padded to a multiple, see ``pad_to``) every tensor
inside the attention blocks has a shape that depends on nothing but the batch's padded size, so
torch.compile can compile them once.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from mlip.kernels import neighbor_attention, use_triton
from mlip.nn.rotary import rotary_frequencies, rotate_pairs


def neighbor_slots(target: torch.Tensor, r: torch.Tensor, num_nodes: int,
                   max_neighbors: int) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Where each edge goes in the (N, K) neighbour table.

    Args:
        target: (E,) receiving atom of each edge; r: (E,) its length, Å.
        max_neighbors: K - 1 when > 0 (fixed shape; edges beyond the nearest max_neighbors of an atom
            are left out); 0: K - 1 = the largest neighbour count in the batch.
    Returns:
        slot (E,) flat index target * K + position (1 = nearest), keep (E,) bool, K.
    """
    order = torch.sort(r.detach(), stable=True)[1]
    order = order[torch.sort(target[order], stable=True)[1]]  # by receiver, nearest first
    counts = torch.zeros(num_nodes, dtype=target.dtype, device=target.device).index_add_(0, target, torch.ones_like(target))
    first = torch.cumsum(counts, 0) - counts
    sorted_target = target[order]
    rank = torch.empty_like(target)
    rank[order] = torch.arange(target.shape[0], device=target.device) - first[sorted_target]
    if max_neighbors > 0:
        num_slots = max_neighbors + 1
    else:
        num_slots = int(counts.max()) + 1 if target.shape[0] > 0 else 1
    keep = rank < num_slots - 1
    return target * num_slots + rank + 1, keep, num_slots


def to_slots(values: torch.Tensor, slot: torch.Tensor, keep: torch.Tensor, num_nodes: int,
             num_slots: int) -> torch.Tensor:
    """(E, ...) per-edge values -> (N, K, ...), zero at slot 0 and at padding (differentiable)."""
    sink = num_nodes * num_slots  # dropped edges land in one extra row that is cut off
    index = torch.where(keep, slot, torch.full_like(slot, sink))
    out = values.new_zeros([sink + 1] + list(values.shape[1:])).index_copy(0, index, values)
    return out[:sink].reshape([num_nodes, num_slots] + list(values.shape[1:]))


def neighbor_table(source: torch.Tensor, target: torch.Tensor, r: torch.Tensor, envelope: torch.Tensor,
                   num_nodes: int, max_neighbors: int) -> Tuple[torch.Tensor, torch.Tensor, int, torch.Tensor,
                                                             torch.Tensor, torch.Tensor]:
    """The (N, K) table of every atom's neighbours, from the edges j -> i (source j, target i).

    Returns slot, keep, K (for :func:`to_slots`), index (N,K) the atom in each slot (the atom itself
    at 0, atom 0 at padding), valid (N,K) bool, and bias (N,K) the attention logit bias of each key:
    log of the cutoff envelope (0 at slot 0; clamped at 1e-30, a normal float32, so its gradient stays
    finite, leaving a weight of 1e-30 at the clamp), -inf at padding.
    """
    slot, keep, k = neighbor_slots(target, r, num_nodes, max_neighbors)
    index = to_slots(source, slot, keep, num_nodes, k)
    index[:, 0] = torch.arange(num_nodes, device=index.device)
    valid = to_slots(torch.ones_like(r), slot, keep, num_nodes, k)
    valid = torch.cat([torch.ones_like(valid[:, :1]), valid[:, 1:]], dim=1) > 0
    env = to_slots(envelope, slot, keep, num_nodes, k)
    env = torch.cat([torch.ones_like(env[:, :1]), env[:, 1:]], dim=1)
    bias = torch.where(valid, torch.log(env.clamp(min=1e-30)), torch.full_like(env, float("-inf")))
    return slot, keep, k, index, valid, bias


def pad_to(n: int, multiple: int) -> int:
    """n rounded up to a multiple of ``multiple`` (n itself when multiple <= 0)."""
    return n if multiple <= 0 else (n + multiple - 1) // multiple * multiple


class NeighborAttention(nn.Module):
    """Multi-head self-attention within each atom's neighbour sequence.

    forward(x (N,K,H), bias (N,K) additive logit of each key (log of the cutoff envelope, -inf at
    padding), harmonics (N,K,(L+1)^2) or None) -> (N,K,H).

    With ``angular_lmax`` L > 0 each head's query and key channels are split into L+1 groups and the
    group of degree l is expanded by the real spherical harmonics Y_l of the token's edge direction
    (EScAIP's frequency embedding): q·k then sums q_c k_c P_l(u_a·u_b) over groups, an invariant that
    lets attention see the angles between neighbours. Runs mlip.kernels.neighbor_attention (the Triton
    kernel on CUDA; elsewhere torch's math attention, whose backward is differentiable again: forces are
    a gradient, and training on them takes the gradient of that); in eval mode without Triton, torch's
    fused scaled_dot_product_attention.

    With ``rotary_wavelength`` > 0 (Å, the longest period), forward's ``positions`` (N,K,3), each
    token's position relative to the sequence's atom, turn queries and keys (mlip.nn.rotary), so
    that scores see the tokens' relative positions.
    """

    def __init__(self, hidden: int, heads: int, angular_lmax: int = 0, rotary_wavelength: float = 0.0):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.heads, self.head_dim = heads, hidden // heads
        if angular_lmax + 1 > self.head_dim:
            raise ValueError(f"angular_lmax {angular_lmax} needs a head dimension > {angular_lmax}; got {self.head_dim}")
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.angular_lmax = angular_lmax
        # channel c of a head in group l -> (2l+1) expanded channels, each times Y_lm / sqrt(2l+1)
        groups = torch.tensor_split(torch.arange(self.head_dim), angular_lmax + 1)
        channel: List[int] = []
        coefficient: List[int] = []
        weight: List[float] = []
        for l, members in enumerate(groups):
            for c in members.tolist():
                for m in range(2 * l + 1):
                    channel.append(c)
                    coefficient.append(l * l + m)
                    weight.append(1.0 / math.sqrt(2 * l + 1))
        self.register_buffer("channel", torch.tensor(channel), persistent=False)
        self.register_buffer("coefficient", torch.tensor(coefficient), persistent=False)
        self.register_buffer("weight", torch.tensor(weight), persistent=False)
        frequencies = rotary_frequencies(self.head_dim, rotary_wavelength) if rotary_wavelength > 0 else torch.zeros(0)
        self.register_buffer("rotary_frequencies", frequencies.float(), persistent=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, harmonics: Optional[torch.Tensor] = None,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        n, k, hidden = x.shape
        q = self.query(x).view(n, k, self.heads, self.head_dim)
        key = self.key(x).view(n, k, self.heads, self.head_dim)
        v = self.value(x).view(n, k, self.heads, self.head_dim).transpose(1, 2)
        if positions is not None and self.rotary_frequencies.shape[0] > 0:
            at = positions.unsqueeze(2)  # (N, K, 1, 3): one position per token, every head
            q = rotate_pairs(q, at, self.rotary_frequencies)
            key = rotate_pairs(key, at, self.rotary_frequencies)
        if harmonics is not None and self.angular_lmax > 0:
            y = (harmonics.index_select(2, self.coefficient) * self.weight.to(x.dtype)).unsqueeze(2)  # (N, K, 1, D')
            q = q.index_select(3, self.channel) * y
            key = key.index_select(3, self.channel) * y
        q, key = q.transpose(1, 2), key.transpose(1, 2)  # (N, heads, K, D')
        scale = 1.0 / math.sqrt(self.head_dim)
        fused_torch = not self.training  # torch's fused attention: fast, but its backward is not differentiable
        if not torch.jit.is_scripting():
            fused_torch = fused_torch and not use_triton(x)
        if fused_torch:
            out = F.scaled_dot_product_attention(q, key, v, attn_mask=bias.to(x.dtype)[:, None, None, :], scale=scale)
        else:  # the Triton kernel, or its reference (math attention, differentiable twice)
            out = neighbor_attention(q, key, v, bias, scale)
        return self.out(out.transpose(1, 2).reshape(n, k, hidden))

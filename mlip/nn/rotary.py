"""Rotary position encodings over 3-D coordinates (RoFormer's RoPE, Su et al. 2021, one block of
channel pairs per Cartesian axis), as TransIP places atoms (Elhag et al. 2025).

Queries and keys are turned, pair of channels by pair, by angles p_a * omega_m (p_a the a-th
coordinate of the token's position, omega_m a ladder of angular frequencies), so that the
attention score of tokens s and t depends on their positions only through p_t - p_s:

    <Rot(p_s) q, Rot(p_t) k> = <q, Rot(p_t - p_s) k>.

Hence any common origin gives the same scores (the centre of mass, as in the paper, or the atom
whose neighbours form the sequence, as mlip's neighbour tables do): the encoding is translation
invariant and defined in periodic cells, but it is not rotation invariant (a non-equivariant
model's choice; its symmetry is learned or averaged over frames).
"""

from __future__ import annotations

import math

import torch


def rotary_frequencies(head_dim: int, max_wavelength: float, min_wavelength: float = 2.0) -> torch.Tensor:
    """(P,) angular frequencies, rad/Å: P = head_dim // 6 per axis, periods geometric from
    ``min_wavelength`` to ``max_wavelength`` Å (a few bond lengths to the attention range). Periods
    below a bond length make the scores, hence the energy, oscillate within a bond's vibration: with
    0.5 Å, TransIP's force error rose during training (benchmarks/bench_transip_positions.py)."""
    pairs = head_dim // 6
    if pairs < 1:
        raise ValueError(f"rotary encodings need at least 6 channels per head, got {head_dim}")
    wavelengths = torch.logspace(math.log10(min_wavelength), math.log10(max_wavelength), pairs, dtype=torch.float64)
    return 2 * math.pi / wavelengths


def rotate_pairs(x: torch.Tensor, positions: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """x (..., D) with its first 6P channels turned by the positions (..., 3) Å (broadcastable to x's
    leading shape): channel pair m of axis a by the angle positions[..., a] * frequencies[m]
    (frequencies (P,), rad/Å)."""
    p = frequencies.shape[0]
    shape = list(x.shape[:-1])
    turned = x[..., : 6 * p].reshape(shape + [3, p, 2])
    angle = positions.to(x.dtype).unsqueeze(-1) * frequencies.to(x.dtype)  # (..., 3, P)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, b = turned[..., 0], turned[..., 1]
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).reshape(shape + [6 * p])
    return torch.cat([rotated, x[..., 6 * p:]], dim=-1)

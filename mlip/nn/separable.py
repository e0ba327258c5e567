"""EquiformerV2's separable layers (Liao et al., ICLR 2024): the invariant l = 0 channels and the
l > 0 degrees treated apart, on features x (N, S, C), S = (lmax+1)^2.

- ``SeparableLayerNorm``: l = 0 as a standard layer norm over channels (centred, scaled, affine);
  all l > 0 degrees normalised together by one root mean square (the mean over degrees of each
  degree's mean square), then a gain per degree and channel.
- ``SeparableGridActivation``: SiLU on the l = 0 channels; for l > 0 the sphere-grid nonlinearity.

This project's choices: the grid nonlinearity is mlip.nn.GridProductMLP's degree-2 product,
exactly equivariant on its grid (the paper's SiLU on a finite grid is equivariant only up to the
grid's resolution, and the physics suite asks for 1e-8); the l > 0 norm has a floor relative to the
l = 0 variance (as SO3RMSNorm's), so vanishing l > 0 features in symmetric environments are not
blown up to unit size.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.nn.grid_mlp import GridProductMLP
from mlip.nn.spherical_harmonics import degree_index


class SeparableLayerNorm(nn.Module):
    """(N, S, C) -> (N, S, C): layer norm on l = 0, one joint RMS norm for l > 0; equivariant."""

    def __init__(self, lmax: int, channels: int, eps: float = 1e-6, floor: float = 0.05):
        super().__init__()
        self.lmax, self.eps, self.floor = lmax, eps, floor
        self.gain = nn.Parameter(torch.ones(lmax + 1, channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        degree = degree_index(lmax)
        self.register_buffer("degree", degree, persistent=False)
        # (S - 1,) weights: the mean over degrees l >= 1 of each degree's mean square
        weight = 1.0 / ((2 * degree[1:] + 1).double() * max(lmax, 1))
        self.register_buffer("rest_weight", weight.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = x[:, :1]
        x0 = x0 - x0.mean(dim=-1, keepdim=True)
        var0 = x0.pow(2).mean(dim=-1, keepdim=True)  # (N, 1, 1)
        gain = self.gain.to(x.dtype)
        y0 = x0 * torch.rsqrt(var0 + self.eps) * gain[0] + self.bias.to(x.dtype)
        if self.lmax == 0:
            return y0
        rest = x[:, 1:]
        ms = (rest.pow(2).mean(dim=-1) * self.rest_weight.to(x.dtype)).sum(dim=-1)  # (N,)
        inv = torch.rsqrt(ms[:, None, None] + self.floor * var0 + self.eps)
        return torch.cat([y0, rest * inv * gain.index_select(0, self.degree[1:])], dim=1)


class SeparableGridActivation(nn.Module):
    """(N, S, C) -> (N, S, C): SiLU on the l = 0 channels, the sphere-grid product nonlinearity
    (GridProductMLP, hidden width ``hidden``) on l > 0."""

    def __init__(self, lmax: int, channels: int, hidden: int):
        super().__init__()
        self.grid = GridProductMLP(lmax, channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.nn.functional.silu(x[:, :1]), self.grid(x)[:, 1:]], dim=1)

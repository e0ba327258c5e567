"""Equivariant layers on features x (N, S, C): S = (lmax+1)^2 coefficients, C channels per degree."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.nn.spherical_harmonics import degree_index


class SO3Linear(nn.Module):
    """Channel mixing per degree: x_l (2l+1, C_in) -> x_l W_l (2l+1, C_out); a bias on l = 0 only."""

    def __init__(self, lmax: int, channels_in: int, channels_out: int, bias: bool = True):
        super().__init__()
        self.lmax = lmax
        self.weight = nn.Parameter(torch.randn(lmax + 1, channels_in, channels_out) / math.sqrt(channels_in))
        self.bias = nn.Parameter(torch.zeros(channels_out)) if bias else None
        self.register_buffer("degree", degree_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype)
        out = torch.cat([
            torch.einsum("nmc,cd->nmd", x[:, l * l:(l + 1) ** 2], w[l]) for l in range(self.lmax + 1)
        ], dim=1)
        if self.bias is not None:
            out = torch.cat([out[:, :1] + self.bias.to(x.dtype), out[:, 1:]], dim=1)
        return out


class SO3RMSNorm(nn.Module):
    """Per degree: x_l / sqrt(mean over (m, c) of x_l^2 + eps) * gain_l (per channel); equivariant."""

    def __init__(self, lmax: int, channels: int, eps: float = 1e-6):
        super().__init__()
        self.lmax = lmax
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(lmax + 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for l in range(self.lmax + 1):
            xl = x[:, l * l:(l + 1) ** 2]
            if l == 0:
                xl = xl - xl.mean(dim=-1, keepdim=True)
            rms = torch.sqrt(xl.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)
            parts.append(xl / rms * self.gain[l].to(x.dtype))
        return torch.cat(parts, dim=1)

"""The interaction block of Facet and TrajCast: equivariant messages over the edges (a tensor
product with the edge harmonics, radial weights by spline or MLP), then a sphere-grid node update.

    message   m_ij = TP(W_pre x_j, Y(r_ij); w(r_ij))
    aggregate x_i += W_post sum_j m_ij / avg_num_neighbors
    update    x_i += GridMLP(norm(x_i)); optionally + Gaunt powers of norm(x_i) (many-body products)
              x_i,0 += MLP_SiLU(norm(x_i)_0)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from mlip.nn.equivariant import SO3Linear, SO3RMSNorm
from mlip.nn.gaunt import EdgeGauntProduct, GauntPower
from mlip.nn.grid_mlp import GridProductMLP
from mlip.nn.radial import RadialMLP, SplineRadial
from mlip.nn.tensor_product import EdgeTensorProduct


class InteractionBlock(nn.Module):
    """One interaction + node update. forward(x (N,S,C), edge_index (2,E), sh (E,S), r (E,), radial_basis)
    -> (N,S,C); ``radial_basis``: ``shared_basis(r)`` of any block with the same cutoff and basis size
    (a model's blocks compute it once), or None."""

    def __init__(self, lmax: int, channels: int, hidden: int, cutoff: float, num_basis: int,
                 avg_num_neighbors: float, radial_heads: int, tensor_product: str = "cg", correlation: int = 1,
                 invariant_input: bool = False, radial: str = "spline"):
        super().__init__()
        self.lmax = lmax
        self.invariant_input = invariant_input  # the first block: only l = 0 features come in
        self.channels = channels
        self.avg_num_neighbors = float(avg_num_neighbors)
        if tensor_product not in ("cg", "gaunt"):
            raise ValueError(f"tensor_product must be 'cg' or 'gaunt', got {tensor_product!r}")
        self.tensor_product = (EdgeTensorProduct(lmax, lmax, lmax) if tensor_product == "cg"
                               else EdgeGauntProduct(lmax, lmax, lmax))
        if channels % radial_heads:
            raise ValueError(f"radial_heads ({radial_heads}) must divide channels ({channels})")
        self.radial_heads = radial_heads
        if radial not in ("spline", "mlp"):
            raise ValueError(f"radial must be 'spline' or 'mlp', got {radial!r}")
        outputs = self.tensor_product.num_paths * radial_heads
        self.radial = (SplineRadial(outputs, cutoff, num_basis) if radial == "spline"
                       else RadialMLP(outputs, cutoff, num_basis))
        self.pre = SO3Linear(lmax, channels, channels, bias=False)
        self.post = SO3Linear(lmax, channels, channels, bias=False)
        self.norm = SO3RMSNorm(lmax, channels)
        self.grid_mlp = GridProductMLP(lmax, channels, hidden)
        if correlation < 1 or correlation > 4:
            raise ValueError(f"correlation must be 1 (none) to 4, got {correlation}")
        # many-body node product: f^2 .. f^nu of each channel's sphere function, mixed per degree
        self.product_basis: Optional[GauntPower] = GauntPower(lmax, correlation, lmax) if correlation > 1 else None
        self.product_mix = nn.ModuleList([SO3Linear(lmax, channels, channels, bias=False)
                                          for _ in range(correlation - 1)])
        self.product_scale = float((lmax + 1) ** -1)  # f / sqrt(S): O(1) values before the powers
        self.scalar_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels))
        self.readout: nn.Module = nn.Identity()  # set by a model that reads an output after each block

    def shared_basis(self, r: torch.Tensor) -> Optional[torch.Tensor]:
        """The radial basis of distances r (E,) that ``forward`` reads (None: it reads r itself)."""
        return self.radial.shared_basis(r)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, sh: torch.Tensor, r: torch.Tensor,
                radial_basis: Optional[torch.Tensor] = None) -> torch.Tensor:
        weights = self.radial(r, radial_basis).reshape(r.shape[0], self.tensor_product.num_paths, self.radial_heads)
        if self.invariant_input:  # the same messages, without the paths from the zero l >= 1 features
            summed = self.tensor_product.aggregate_invariant(self.pre(x), edge_index, sh, weights)
        else:
            summed = self.tensor_product.aggregate(self.pre(x), edge_index, sh, weights)
        x = x + self.post(summed / self.avg_num_neighbors)
        y = self.norm(x)
        x = x + self.grid_mlp(y)
        if self.product_basis is not None:
            powers = self.product_basis(y.transpose(1, 2) * self.product_scale)  # (N, C, nu - 1, S)
            for k, mix in enumerate(self.product_mix):
                x = x + mix(powers[:, :, k].transpose(1, 2))
        scalars = x[:, :1] + self.scalar_mlp(y[:, 0]).unsqueeze(1)
        return torch.cat([scalars, x[:, 1:]], dim=1)

"""Segment sums with torch's own index_add (no torch-scatter dependency)."""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[i] = sum of src[k] over k with index[k] == i; (K, ...) -> (dim_size, ...)."""
    out = src.new_zeros([dim_size] + list(src.shape[1:]))
    return out.index_add(0, index, src)

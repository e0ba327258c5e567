"""Segment sums: mlip.kernels.segment_sum (deterministic Triton kernel on CUDA, index_add elsewhere)."""

from __future__ import annotations

import torch

from mlip.kernels import segment_sum


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[i] = sum of src[k] over k with index[k] == i; (K, ...) -> (dim_size, ...)."""
    return segment_sum(src, index, dim_size)

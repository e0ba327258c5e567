"""Buffers of exact constants (coupling tables, quadrature matrices) that survive dtype changes.

A float64 master copy is kept beside each buffer; after ``.float()``, ``.double()`` or ``.to()``
the buffer is re-derived from it, so a model made in float32 and moved to float64 is exact to
float64 rounding rather than carrying float32 constants.
"""

from __future__ import annotations

import torch
from torch import nn


class ExactBuffers(nn.Module):
    def register_exact(self, name: str, value: torch.Tensor, persistent: bool = True) -> None:
        masters = self.__dict__.setdefault("_exact_masters", {})
        masters[name] = value.detach().double().cpu()
        self.register_buffer(name, value.detach().to(torch.get_default_dtype()), persistent=persistent)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        for name, master in self.__dict__.get("_exact_masters", {}).items():
            current = getattr(self, name)
            setattr(self, name, master.to(device=current.device, dtype=current.dtype))
        return self

"""The transformer feed-forward layer: Linear -> SiLU -> Linear, width ``multiplier`` x hidden."""

from __future__ import annotations

from torch import nn


def feed_forward(hidden: int, multiplier: int = 2) -> nn.Sequential:
    """(..., hidden) -> (..., hidden) through a hidden layer of ``multiplier * hidden``."""
    return nn.Sequential(nn.Linear(hidden, multiplier * hidden), nn.SiLU(), nn.Linear(multiplier * hidden, hidden))

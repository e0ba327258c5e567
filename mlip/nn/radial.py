"""Radial functions of interatomic distance: cutoff envelopes, uniform cubic B-splines, Bessel and
Gaussian bases."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from mlip.kernels import bspline, use_triton


class PolynomialEnvelope(nn.Module):
    """u(r) = 1 - (p+1)(p+2)/2 d^p + p(p+2) d^(p+1) - p(p+1)/2 d^(p+2), d = r / cutoff; zero beyond.

    u, u' and u'' vanish at the cutoff (DimeNet's envelope), so energies built from it have
    continuous forces as a neighbour crosses the cutoff.
    """

    def __init__(self, cutoff: float, exponent: int = 5):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(exponent)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        d = r / self.cutoff
        u = 1 - (p + 1) * (p + 2) / 2 * d**p + p * (p + 2) * d ** (p + 1) - p * (p + 1) / 2 * d ** (p + 2)
        return torch.where(d < 1, u, torch.zeros_like(u))


def cubic_bspline_basis(r: torch.Tensor, num_basis: int, cutoff: float) -> torch.Tensor:
    """(E, num_basis) uniform cubic B-spline basis on [0, cutoff] (knot spacing cutoff/(num_basis-3)).

    Each row has at most four non-zero entries and sums to one; the functions are C2.
    """
    h = cutoff / (num_basis - 3)
    t = (r / h).clamp(min=0.0, max=(num_basis - 3) - 1e-9)
    i = torch.floor(t).clamp(max=num_basis - 4)  # t's upper clamp rounds to num_basis - 3 in float32
    u = t - i
    b0 = (1 - u) ** 3 / 6
    b1 = (3 * u**3 - 6 * u**2 + 4) / 6
    b2 = (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6
    b3 = u**3 / 6
    idx = i.long().unsqueeze(-1) + torch.arange(4, device=r.device)
    out = r.new_zeros(list(r.shape) + [num_basis])
    return out.scatter(-1, idx, torch.stack([b0, b1, b2, b3], dim=-1))


class SplineBasis(nn.Module):
    """``forward(r (E,)) -> (E, num_basis)``: the cubic B-spline basis (cubic_bspline_basis) times the
    envelope, the basis SplineRadial's coefficients multiply."""

    def __init__(self, num_basis: int, cutoff: float, envelope_exponent: int = 5):
        super().__init__()
        self.num_basis = int(num_basis)
        self.cutoff = float(cutoff)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return cubic_bspline_basis(r, self.num_basis, self.cutoff) * self.envelope(r).unsqueeze(-1)


class SplineRadial(nn.Module):
    """Learned radial weights: ``num_out`` cubic B-splines of the distance times the envelope.

    ``forward(r (E,), basis=None) -> (E, num_out)``; no MLP over a radial basis, just the spline
    coefficients (num_basis, num_out): on CUDA evaluated by mlip.kernels.bspline from the table (no
    basis matrix), elsewhere as the enveloped basis (SplineBasis, ``basis`` when the caller has it:
    layers with the same basis share one) times the table.
    The coefficients start N(0, 36 / num_basis): large enough that a Facet block's first messages
    are a fair part of its node features (rms 0.25 against the embedding's 0.9 in the first block
    on 3BPA, where 2 / sqrt(num_basis) gave 0.08), so the geometry is not a small correction at the
    start of training (single 240 s runs of benchmarks/bench_train.py on 3BPA: force MAE 37.2 ->
    35.0 meV/Å; with 12 / sqrt(num_basis) 36.3).
    """

    def __init__(self, num_out: int, cutoff: float, num_basis: int = 10, envelope_exponent: int = 5):
        super().__init__()
        self.cutoff = float(cutoff)
        self.num_basis = int(num_basis)
        self.coefficients = nn.Parameter(torch.randn(num_basis, num_out) * (6.0 / math.sqrt(num_basis)))
        self.basis = SplineBasis(num_basis, cutoff, envelope_exponent)

    def shared_basis(self, r: torch.Tensor) -> Optional[torch.Tensor]:
        """The basis ``forward`` reads, for layers that share it; None where the table is read
        directly (CUDA's kernel)."""
        if not torch.jit.is_scripting():
            if use_triton(r):
                return None
        return self.basis(r)

    def forward(self, r: torch.Tensor, basis: Optional[torch.Tensor] = None) -> torch.Tensor:
        coefficients = self.coefficients.to(r.dtype)
        if basis is None:
            basis = self.shared_basis(r)
        if basis is not None:
            return basis @ coefficients
        return bspline(r, coefficients, self.cutoff) * self.basis.envelope(r).unsqueeze(-1)  # CUDA's kernel


class BesselBasis(nn.Module):
    """sqrt(2/c) sin(n π r / c) / r, n = 1..num_basis (DimeNet / NequIP radial basis), times the envelope."""

    def __init__(self, num_basis: int, cutoff: float, envelope_exponent: int = 5, trainable: bool = False):
        super().__init__()
        self.cutoff = float(cutoff)
        freqs = math.pi * torch.arange(1, num_basis + 1, dtype=torch.float64) / cutoff
        self.frequencies = nn.Parameter(freqs.float(), requires_grad=trainable)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        out = math.sqrt(2.0 / self.cutoff) * torch.sin(self.frequencies.to(r.dtype) * r) / r
        return out * self.envelope(r)


class RadialMLP(nn.Module):
    """Learned radial weights from an MLP of the Bessel basis (MACE / NequIP):
    ``forward(r (E,), basis=None) -> (E, num_out)`` (``basis``: ``shared_basis(r)``, when the caller
    has it). No biases, so the output vanishes with the basis (times the envelope) at the cutoff.
    Weights start N(0, 1 / fan_in) and the SiLU is scaled to unit second moment (e3nn's
    normalisation), so every layer's output is O(1).

    ``basis="gaussian"``: Gaussians on [0, cutoff] instead (GaussianBasis, no envelope), for a
    quantity that has no cutoff, such as a speed (TrajCast's velocity embedding)."""

    def __init__(self, num_out: int, cutoff: float, num_basis: int = 8, hidden: int = 64, layers: int = 3,
                 envelope_exponent: int = 5, basis: str = "bessel"):
        super().__init__()
        if basis not in ("bessel", "gaussian"):
            raise ValueError(f"basis must be 'bessel' or 'gaussian', got {basis!r}")
        if basis == "bessel":
            self.basis: nn.Module = BesselBasis(num_basis, cutoff, envelope_exponent)
            self.basis_scale = float(math.sqrt(cutoff))  # the Bessel basis is O(1 / sqrt(cutoff))
        else:
            self.basis = GaussianBasis(num_basis, cutoff)
            self.basis_scale = 1.0
        sizes = [num_basis] + [hidden] * layers + [num_out]
        modules: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            linear = nn.Linear(a, b, bias=False)
            nn.init.normal_(linear.weight, std=a ** -0.5)
            modules += [linear, _NormalizedSiLU()]
        self.mlp = nn.Sequential(*modules[:-1])

    def shared_basis(self, r: torch.Tensor) -> Optional[torch.Tensor]:
        """The basis ``forward`` reads, for layers that share it."""
        return self.basis(r)

    def forward(self, r: torch.Tensor, basis: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.mlp((self.basis(r) if basis is None else basis) * self.basis_scale)


class _NormalizedSiLU(nn.Module):
    """SiLU scaled to unit second moment for z ~ N(0, 1) (e3nn's normalize2mom)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x) * 1.679


class GaussianBasis(nn.Module):
    """exp(-(r - μ_k)^2 / (2 (w Δ)^2)), μ_k evenly spaced on [0, cutoff] (spacing Δ, width factor w):
    the Gaussian smearing of SchNet / SCN / EScAIP. ``forward(r (...)) -> (..., num_basis)``."""

    def __init__(self, num_basis: int, cutoff: float, width: float = 2.0):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, float(cutoff), num_basis), persistent=False)
        spacing = float(cutoff) / max(num_basis - 1, 1)
        self.coefficient = -0.5 / (width * spacing) ** 2

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.coefficient * (r.unsqueeze(-1) - self.centers.to(r.dtype)) ** 2)

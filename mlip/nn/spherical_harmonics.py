"""Real spherical harmonics up to l = 6 (and beyond), polynomial in (x, y, z): smooth and exact.

Convention: Y_lm for m = -l..l, stacked l by l into (..., (lmax+1)^2); orthonormal on the sphere
times sqrt(4π), so Y_00 = 1 and sum_m Y_lm(x)^2 = 2l + 1 ("component" normalisation).
Condon-Shortley phase included. Parity: Y_l(-x) = (-1)^l Y_l(x).
"""

from __future__ import annotations

import math
from typing import List

import torch


def num_coefficients(lmax: int) -> int:
    return (lmax + 1) ** 2


def degree_index(lmax: int) -> torch.Tensor:
    """(S,) the degree l of each of the (lmax+1)^2 coefficients."""
    return torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)], dtype=torch.long)


def _norm(l: int, m: int) -> float:
    """sqrt(4π) N_lm, with N_lm the orthonormalising factor of the real harmonic."""
    ratio = 1.0  # (l - m)! / (l + m)!
    for k in range(l - m + 1, l + m + 1):
        ratio = ratio / k
    n = math.sqrt((2 * l + 1) * ratio)
    return n * (math.sqrt(2.0) if m > 0 else 1.0)


def l1_to_cartesian() -> torch.Tensor:
    """(3, 3) float64 M with v = c M for the l = 1 coefficients c (Y_1,-1, Y_1,0, Y_1,1) of the
    function v . r on the sphere: a direct-force head's l = 1 output back to (x, y, z)."""
    basis = spherical_harmonics(1, torch.eye(3, dtype=torch.float64), normalize=False)[:, 1:]  # (3 xyz, 3 m)
    return torch.linalg.inv(basis)


def spherical_harmonics(lmax: int, vectors: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Real spherical harmonics of ``vectors``.

    Args:
        lmax: highest degree.
        vectors: (..., 3); unit vectors, or any vectors with ``normalize=True``.
    Returns:
        (..., (lmax+1)^2) in the dtype of ``vectors``.
    """
    if normalize:
        vectors = vectors / vectors.norm(p=2, dim=-1, keepdim=True)
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    # Re/Im of (x + i y)^m: the azimuthal parts times sin(θ)^m, polynomial in x and y
    cos_m: List[torch.Tensor] = [torch.ones_like(x)]
    sin_m: List[torch.Tensor] = [torch.zeros_like(x)]
    for m in range(1, lmax + 1):
        cos_m.append(x * cos_m[m - 1] - y * sin_m[m - 1])
        sin_m.append(x * sin_m[m - 1] + y * cos_m[m - 1])
    # q[l][m] = P_l^m(z) / sin(θ)^m, by the usual three-term recursion in l
    q: List[List[torch.Tensor]] = [[torch.ones_like(z)]]
    for l in range(1, lmax + 1):
        row: List[torch.Tensor] = []
        for m in range(l + 1):
            if m == l:
                row.append(-(2 * l - 1) * q[l - 1][l - 1])
            elif m == l - 1:
                row.append((2 * l - 1) * z * q[l - 1][m])
            else:
                row.append(((2 * l - 1) * z * q[l - 1][m] - (l + m - 1) * q[l - 2][m]) / (l - m))
        q.append(row)
    out: List[torch.Tensor] = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            a = abs(m)
            angular = cos_m[a] if m >= 0 else sin_m[a]
            out.append(_norm(l, a) * q[l][a] * angular)
    return torch.stack(out, dim=-1)


def solid_harmonics(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    """|v|^l Y_lm(v / |v|), (..., (lmax+1)^2): homogeneous polynomials of degree l in v, so smooth
    through v = 0 (where every l >= 1 coefficient is 0) and equivariant for vectors of any length
    (``spherical_harmonics(normalize=False)`` is so for unit vectors only)."""
    length = vectors.norm(p=2, dim=-1, keepdim=True)
    unit = vectors / length.clamp(min=1e-30)
    sh = spherical_harmonics(lmax, unit, normalize=False)
    return torch.cat([sh[..., l * l:(l + 1) * (l + 1)] * length.pow(l) for l in range(lmax + 1)], dim=-1)

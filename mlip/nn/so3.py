"""SO(3) tools built on exact quadrature over the sphere: Wigner-D matrices in the real basis of
mlip.nn.spherical_harmonics, real Clebsch-Gordan (Gaunt) coupling tensors, random rotations.

A product of spherical harmonics of total degree d is integrated exactly by a Gauss-Legendre rule
in cos θ with ceil((d+1)/2) nodes times a uniform rule in φ with d+1 nodes, so every matrix here is
exact to rounding error.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from mlip.nn.spherical_harmonics import spherical_harmonics


@functools.lru_cache(maxsize=None)
def sphere_quadrature(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (P,3) and weights (P,) summing to 1 that integrate polynomials of degree <= ``degree``
    on the unit sphere exactly (as the mean over the sphere)."""
    n_theta = max(1, math.ceil((degree + 1) / 2))
    n_phi = degree + 1
    z, wz = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * (np.arange(n_phi) + 0.5) / n_phi
    s = np.sqrt(1 - z**2)
    points = np.stack([
        (s[:, None] * np.cos(phi)[None, :]).ravel(),
        (s[:, None] * np.sin(phi)[None, :]).ravel(),
        np.repeat(z, n_phi),
    ], axis=1)
    weights = np.repeat(wz / 2, n_phi) / n_phi
    return points, weights


@functools.lru_cache(maxsize=None)
def _gaunt_numpy(l1: int, l2: int, l3: int) -> np.ndarray:
    points, weights = sphere_quadrature(l1 + l2 + l3)
    pts = torch.from_numpy(points)
    lmax = max(l1, l2, l3)
    y = spherical_harmonics(lmax, pts, normalize=False).numpy()
    y1, y2, y3 = (y[:, l * l:(l + 1) ** 2] for l in (l1, l2, l3))
    return np.einsum("p,pa,pb,pc->abc", weights, y1, y2, y3)


def coupling(l1: int, l2: int, l3: int, dtype=torch.float64) -> torch.Tensor:
    """(2l1+1, 2l2+1, 2l3+1) real coupling tensor C with
    sum_ab C_abc (D1 x)_a (D2 y)_b = (D3 sum_ab C_ab. x_a y_b)_c for every rotation.

    It is the Gaunt integral mean(Y_l1a Y_l2b Y_l3c) normalised to unit Frobenius norm, non-zero
    only for l1 + l2 + l3 even (the parity-preserving paths) and the triangle rule.
    """
    c = _gaunt_numpy(l1, l2, l3)
    norm = np.linalg.norm(c)
    if norm < 1e-12:
        raise ValueError(f"no parity-preserving coupling for ({l1}, {l2}, {l3})")
    return torch.as_tensor(c / norm, dtype=dtype)


def wigner_D(l: int, rotation: torch.Tensor) -> torch.Tensor:
    """(..., 2l+1, 2l+1) matrices with Y_l(R x) = D(R) Y_l(x) for rotations ``rotation`` (..., 3, 3)."""
    points, weights = sphere_quadrature(2 * l)
    pts = torch.as_tensor(points, dtype=rotation.dtype, device=rotation.device)
    w = torch.as_tensor(weights, dtype=rotation.dtype, device=rotation.device)
    sl = slice(l * l, (l + 1) ** 2)
    y = spherical_harmonics(l, pts, normalize=False)[:, sl]  # (P, 2l+1)
    rotated = pts @ rotation.transpose(-1, -2)  # (..., P, 3): R x for each point
    y_rot = spherical_harmonics(l, rotated, normalize=False)[..., sl]  # (..., P, 2l+1)
    # D_ab = mean over the sphere of Y_a(R x) Y_b(x), since mean(Y_a Y_b) = δ_ab here
    return torch.einsum("...pa,pb,p->...ab", y_rot, y, w)


def block_wigner_D(lmax: int, rotation: torch.Tensor) -> torch.Tensor:
    """(..., S, S) block-diagonal Wigner-D for all degrees 0..lmax, S = (lmax+1)^2."""
    s = (lmax + 1) ** 2
    out = rotation.new_zeros(rotation.shape[:-2] + (s, s))
    for l in range(lmax + 1):
        sl = slice(l * l, (l + 1) ** 2)
        out[..., sl, sl] = wigner_D(l, rotation)
    return out


def random_rotation(n: int | None = None, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Uniformly random rotation matrices (3,3), or (n,3,3), with determinant +1."""
    shape = (1 if n is None else n, 3, 3)
    q, r = torch.linalg.qr(torch.randn(shape, dtype=dtype, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    q = torch.where(torch.linalg.det(q)[:, None, None] < 0, -q, q)
    return q[0] if n is None else q

import numpy as np
import pytest
import torch
from numpy.polynomial.legendre import legval

from mlip.nn import block_wigner_D, random_rotation, spherical_harmonics


@pytest.fixture
def unit_vectors():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(20, 3, dtype=torch.float64, generator=g)
    return v / v.norm(dim=1, keepdim=True)


def test_addition_theorem(unit_vectors):
    # sum_m Y_lm(x) Y_lm(y) = (2l+1) P_l(x . y): fixes normalisation and completeness of each degree
    x, y = unit_vectors[:10], unit_vectors[10:]
    yx, yy = spherical_harmonics(6, x), spherical_harmonics(6, y)
    for l in range(7):
        sl = slice(l * l, (l + 1) ** 2)
        expected = (2 * l + 1) * legval((x * y).sum(1).numpy(), [0] * l + [1])
        np.testing.assert_allclose((yx[:, sl] * yy[:, sl]).sum(1).numpy(), expected, atol=1e-12)


def test_parity_and_known_values(unit_vectors):
    y = spherical_harmonics(6, unit_vectors)
    y_minus = spherical_harmonics(6, -unit_vectors)
    for l in range(7):
        sl = slice(l * l, (l + 1) ** 2)
        torch.testing.assert_close(y_minus[:, sl], (-1) ** l * y[:, sl])
    assert torch.allclose(y[:, 0], torch.ones(20, dtype=torch.float64))
    # l = 1 is sqrt(3) (y, z, x) up to the Condon-Shortley sign of m = +-1
    v = unit_vectors
    torch.testing.assert_close(y[:, 1:4], 3**0.5 * torch.stack([-v[:, 1], v[:, 2], -v[:, 0]], dim=1))


def test_rotation_by_wigner_d(unit_vectors):
    r = random_rotation()
    d = block_wigner_D(6, r)
    torch.testing.assert_close(spherical_harmonics(6, unit_vectors @ r.T), spherical_harmonics(6, unit_vectors) @ d.T,
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(d @ d.T, torch.eye(49, dtype=torch.float64), atol=1e-12, rtol=0)


def test_wigner_d_is_a_representation():
    r1, r2 = random_rotation(), random_rotation()
    torch.testing.assert_close(block_wigner_D(4, r1 @ r2), block_wigner_D(4, r1) @ block_wigner_D(4, r2),
                               atol=1e-12, rtol=0)


def test_normalize_flag():
    v = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(spherical_harmonics(2, v), spherical_harmonics(2, v / 2, normalize=False))

"""The Gaunt tensor product (mlip.nn.gaunt) against the Gaunt coefficients of exact sphere
quadrature (mlip.nn.so3), for both convolution routes, with its equivariance, its many-body powers,
gradients and the odd paths it cannot express."""

import numpy as np
import pytest
import torch

from mlip.nn.gaunt import EdgeGauntProduct, GauntPower, GauntProduct, gaunt_reference, harmonics_fourier
from mlip.nn.so3 import block_wigner_D, random_rotation
from mlip.nn.spherical_harmonics import spherical_harmonics
from mlip.testing.equivariance import feature_equivariance_error


def test_fourier_coefficients_reproduce_the_harmonics():
    lmax = 6
    yhat = torch.from_numpy(harmonics_fourier(lmax))  # (S, 2L+1, 2L+1)
    vec = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    theta, phi = torch.arccos(vec[:, 2]), torch.atan2(vec[:, 1], vec[:, 0])
    u = torch.arange(-lmax, lmax + 1, dtype=torch.float64)
    phase = torch.exp(1j * (theta[:, None, None] * u[None, :, None] + phi[:, None, None] * u[None, None, :]))
    values = torch.einsum("auv,nuv->na", yhat, phase)
    torch.testing.assert_close(values.real, spherical_harmonics(lmax, vec), rtol=0, atol=1e-12)
    assert float(values.imag.abs().max()) < 1e-12


@pytest.mark.parametrize("method", ["fft", "direct"])
@pytest.mark.parametrize("lmax1, lmax2, lmax_out", [(1, 1, 2), (2, 1, 3), (2, 2, 4), (3, 3, 2), (4, 2, 6), (6, 6, 6)])
def test_product_equals_the_gaunt_coefficients(lmax1, lmax2, lmax_out, method):
    torch.manual_seed(0)
    x = torch.randn(4, 3, (lmax1 + 1) ** 2, dtype=torch.float64)
    y = torch.randn(4, 3, (lmax2 + 1) ** 2, dtype=torch.float64)
    expected = torch.einsum("nca,ncb,abo->nco", x, y, gaunt_reference(lmax1, lmax2, lmax_out))
    out = GauntProduct(lmax1, lmax2, lmax_out, method).double()(x, y)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12 * float(expected.abs().max()))


def test_every_degree_pair_up_to_6_to_1e_10():
    """All 49 pairs (l1, l2) of input degrees up to 6, output to degree min(l1 + l2, 6), FFT route."""
    torch.manual_seed(4)
    for lmax1 in range(7):
        for lmax2 in range(7):
            lmax_out = min(lmax1 + lmax2, 6)
            x = torch.randn(3, (lmax1 + 1) ** 2, dtype=torch.float64)
            y = torch.randn(3, (lmax2 + 1) ** 2, dtype=torch.float64)
            expected = torch.einsum("na,nb,abo->no", x, y, gaunt_reference(lmax1, lmax2, lmax_out))
            out = GauntProduct(lmax1, lmax2, lmax_out).double()(x, y)
            error = float((out - expected).abs().max() / expected.abs().max())
            assert error < 1e-10, (lmax1, lmax2, error)


def test_channelwise_product_with_edge_harmonics_is_equivariant():
    """A feature (E, C, S) times its edge's harmonics (E, 1, S_sh), broadcast over channels."""
    torch.manual_seed(1)
    product = GauntProduct(2, 3, 3).double()
    x = torch.randn(6, 4, 9, dtype=torch.float64)
    vec = torch.randn(6, 3, dtype=torch.float64)
    rotation = random_rotation(dtype=torch.float64)
    out = product(x, spherical_harmonics(3, vec)[:, None, :])
    turned = product(torch.einsum("ab,ncb->nca", block_wigner_D(2, rotation), x),
                     spherical_harmonics(3, vec @ rotation.T)[:, None, :])
    torch.testing.assert_close(turned, torch.einsum("ab,ncb->nca", block_wigner_D(3, rotation), out),
                               rtol=0, atol=1e-12)
    # of two features, through the shared helper (features (N, S, C))
    square = GauntProduct(2, 2, 4).double()
    error = feature_equivariance_error(lambda f: square(f.transpose(1, 2), f.transpose(1, 2)).transpose(1, 2),
                                       torch.randn(5, 9, 3, dtype=torch.float64), 2, 4)
    assert error < 1e-13


def test_edge_messages_are_gaunt_products_with_per_degree_weights():
    """EdgeGauntProduct.edge_messages (Facet's messages): for each edge and channel of head h,
    w_out[l3] * Gaunt(x_source, sum_l2 w_sh[l2] Y_l2), as GauntProduct computes it edge by edge."""
    torch.manual_seed(5)
    lmax, heads, channels = 2, 2, 4
    product = EdgeGauntProduct(lmax, lmax, lmax).double()
    x = torch.randn(3, 9, channels, dtype=torch.float64)
    source = torch.tensor([0, 2, 1, 2, 0])
    sh = spherical_harmonics(lmax, torch.randn(5, 3, dtype=torch.float64))
    weights = torch.randn(5, product.num_paths, heads, dtype=torch.float64)
    out = product.edge_messages(x, source, sh, weights)
    degree = torch.tensor([0, 1, 1, 1, 2, 2, 2, 2, 2])
    single = GauntProduct(lmax, lmax, lmax).double()
    for e in range(5):
        for c in range(channels):
            h = c // (channels // heads)
            y = sh[e] * weights[e, degree, h]
            expected = single(x[source[e], :, c], y) * weights[e, lmax + 1 + degree, h]
            torch.testing.assert_close(out[e, :, c], expected, rtol=0, atol=1e-12)


def test_the_odd_paths_are_missing():
    """A product of functions is symmetric: the cross product of two vectors (1 x 1 -> 1, an odd
    path) is what the Gaunt product cannot give."""
    a = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)  # l = 1 only
    b = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    out = GauntProduct(1, 1, 2).double()(a, b)
    assert float(out[1:4].abs().max()) < 1e-15  # no l = 1 part
    assert float(out[4:].abs().max()) > 0.1  # the l = 2 (symmetric) part is there


@pytest.mark.parametrize("method", ["grid", "fft"])
@pytest.mark.parametrize("correlation", [2, 3, 4])
def test_powers_are_repeated_products(correlation, method):
    torch.manual_seed(2)
    lmax, lmax_out = 2, 3
    x = torch.randn(3, 5, 9, dtype=torch.float64)
    powers = GauntPower(lmax, correlation, lmax_out, method).double()(x)
    assert powers.shape == (3, 5, correlation - 1, 16)
    full = x  # the exact power, kept to its full degree
    for nu in range(2, correlation + 1):
        full = GauntProduct(lmax * (nu - 1), lmax, lmax * nu, "fft").double()(full, x)
        torch.testing.assert_close(powers[..., nu - 2, :], full[..., :16], rtol=0,
                                   atol=1e-11 * float(full.abs().max()))


def test_gradients_and_float32():
    torch.manual_seed(3)
    product = GauntProduct(2, 2, 2, "fft").double()
    x = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(product, (x, y))
    for method in ("grid", "fft"):
        assert torch.autograd.gradcheck(GauntPower(1, 3, 2, method).double(),
                                        (torch.randn(2, 4, dtype=torch.float64, requires_grad=True),))
    product32 = GauntProduct(2, 2, 2).float()
    out = product32(x.detach().float(), y.detach().float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), product(x, y).detach(), rtol=1e-5, atol=1e-5)


def test_power_files_of_the_fft_route_load_into_the_grid_route():
    """Facet files saved when GauntPower had only the FFT route hold its conversion tables."""
    saved = GauntPower(2, 3, 2, "fft").state_dict()
    assert any(key.startswith("to_fourier.") for key in saved)
    grid = GauntPower(2, 3, 2)
    grid.load_state_dict(saved)  # strict: no unexpected keys left
    assert grid.state_dict() == {}
    with pytest.raises(ValueError, match="'grid' or 'fft'"):
        GauntPower(2, 3, 2, "direct")

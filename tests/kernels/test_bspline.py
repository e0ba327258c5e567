import pytest
import torch

from mlip.kernels import backend, bspline, bspline_reference
from mlip.nn.radial import cubic_bspline_basis
from tests.kernels.compare import assert_matches_reference, on_device

CUTOFF = 5.0


def case(edges: int, num_basis=10, paths=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = (torch.rand(edges, generator=g, dtype=dtype) * 1.1 * CUTOFF).requires_grad_()  # some beyond the cutoff
    coefficients = torch.randn(num_basis, paths, generator=g, dtype=dtype).requires_grad_()
    return on_device(r, coefficients)


@pytest.mark.parametrize("edges, paths", [(0, 3), (1, 1), (45, 5), (70, 37)])
@pytest.mark.parametrize("order", [0, 1])
def test_equals_reference_with_derivatives(edges, paths, order):
    r, c = case(edges, paths=paths)
    assert_matches_reference(lambda r, c: bspline(r, c, CUTOFF, order), lambda r, c: bspline_reference(r, c, CUTOFF, order),
                             [r, c], rtol=1e-9, atol=1e-9)


def test_reference_is_the_basis_matrix_product_and_the_derivatives_are_consistent():
    r, c = case(64)
    torch.testing.assert_close(bspline_reference(r, c, CUTOFF), cubic_bspline_basis(r, 10, CUTOFF) @ c)
    with backend("triton"):
        values = bspline(r, c, CUTOFF)
        slope = torch.autograd.grad(values.sum(), r)[0]
        for order in (1, 2, 3):
            torch.testing.assert_close(bspline(r, c, CUTOFF, order), bspline_reference(r, c, CUTOFF, order))
        torch.testing.assert_close(slope, bspline(r, c, CUTOFF, 1).sum(-1))
        assert bool((bspline(r, c, CUTOFF, 4) == 0).all())


def test_float32_tolerance():
    r, c = case(100, paths=12, dtype=torch.float32)
    with backend("triton"):
        out = bspline(r, c, CUTOFF)
    torch.testing.assert_close(out, bspline_reference(r, c, CUTOFF), rtol=1e-5, atol=1e-5)

import math

import pytest
import torch

from mlip.kernels import rotate_into, rotate_into_reference, rotate_out_of, rotate_out_of_reference
from mlip.nn.so2 import EdgeFrame
from tests.kernels.compare import DEVICE, assert_matches_reference, on_device


def case(edges: int, lmax: int, mmax: int, channels: int, dtype=torch.float64):
    frame = EdgeFrame(lmax, mmax).to(dtype)
    g = torch.Generator().manual_seed(0)
    vec = torch.randn(edges, 3, generator=g, dtype=dtype)
    d = frame.matrices(vec).detach().requires_grad_() if edges else torch.zeros(0, len(frame.kept), (lmax + 1) ** 2,
                                                                              dtype=dtype, requires_grad=True)
    x = torch.randn(edges, (lmax + 1) ** 2, channels, generator=g, dtype=dtype).requires_grad_()
    y = torch.randn(edges, len(frame.kept), channels, generator=g, dtype=dtype).requires_grad_()
    return (frame.to(DEVICE),) + on_device(d, x, y)


@pytest.mark.parametrize("edges, lmax, mmax, channels", [(0, 2, 1, 3), (1, 2, 2, 2), (5, 3, 1, 5), (17, 2, 1, 20),
                                                                    (2, 6, 2, 2)])  # the eSCN "oc20" degrees
def test_equals_reference_with_derivatives(edges, lmax, mmax, channels):
    frame, d, x, y = case(edges, lmax, mmax, channels)
    rs, re = frame.row_start, frame.row_end
    assert_matches_reference(lambda d, x, y: (rotate_into(d, x, rs, re), rotate_out_of(d, y, rs, re)),
                             lambda d, x, y: (rotate_into_reference(d, x, rs, re), rotate_out_of_reference(d, y, rs, re)),
                             [d, x, y])


def test_reference_is_the_dense_rotation_of_the_truncated_rows():
    """The masked entries of d are zero for a real Wigner-D: the block form is the dense product."""
    frame, d, x, y = case(6, 3, 2, 4)
    torch.testing.assert_close(rotate_into_reference(d, x, frame.row_start, frame.row_end), torch.bmm(d, x))
    torch.testing.assert_close(rotate_out_of_reference(d, y, frame.row_start, frame.row_end),
                               torch.bmm(d.transpose(1, 2), y))
    assert frame.row_start.tolist()[:4] == [0, 1, 1, 1] and math.isqrt(int(frame.row_end[-1])) == 4

import pytest
import torch

from mlip.kernels import backend, segment_sum, segment_sum_reference
from tests.kernels.compare import assert_matches_reference, on_device


def case(edges: int, nodes: int, features=(3, 2), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn((edges, *features), generator=g, dtype=dtype).requires_grad_()
    index = torch.sort(torch.randint(0, max(nodes, 1), (edges,), generator=g)).values
    return on_device(src, index)


@pytest.mark.parametrize("edges, nodes", [(0, 4), (1, 3), (37, 6), (300, 5)])  # no edges, one, odd sizes
def test_equals_reference_with_derivatives(edges, nodes):
    src, index = case(edges, nodes)
    assert_matches_reference(lambda s: segment_sum(s, index, nodes), lambda s: segment_sum_reference(s, index, nodes),
                             [src])


def test_atom_without_neighbours_gets_zero_and_float32_agrees():
    src, index = case(20, 8, features=(5,), dtype=torch.float32)
    index = torch.where(index == 3, torch.full_like(index, 2), index)  # node 3 has no edges
    with backend("triton"):
        out = segment_sum(src, index, 8)
    assert bool((out[3] == 0).all())
    torch.testing.assert_close(out, segment_sum_reference(src, index, 8), rtol=1e-5, atol=1e-6)


def test_unsorted_edges_are_sorted_first():
    src, index = case(40, 7)
    (shuffled,) = on_device(torch.randperm(40, generator=torch.Generator().manual_seed(3)))
    with backend("triton"):
        out = segment_sum(src[shuffled], index[shuffled], 7)
    torch.testing.assert_close(out, segment_sum_reference(src, index, 7))


def test_deterministic_bits():
    src, index = case(500, 9, features=(16,), dtype=torch.float32)
    with backend("triton"):
        runs = [segment_sum(src, index, 9) for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])

import pytest
import torch

from mlip.kernels import backend, block_aggregate, block_aggregate_reference
from mlip.kernels.block_sparse import sparse_product_available
from tests.kernels.compare import assert_matches_reference


def case(edges: int, targets: int, sources: int, rows: int, cols: int, channels: int = 4, dtype=torch.float64,
         seed: int = 0, sort: bool = True):
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randn(edges, rows, cols, generator=g, dtype=dtype).requires_grad_()
    x = torch.randn(sources, cols, channels, generator=g, dtype=dtype).requires_grad_()
    target = torch.randint(0, max(targets, 1), (edges,), generator=g)
    target = torch.sort(target).values if sort else target
    source = torch.randint(0, max(sources, 1), (edges,), generator=g)
    return blocks, x, target, source


@pytest.mark.parametrize("edges, rows, cols", [(0, 3, 3), (1, 4, 4), (57, 9, 9), (40, 9, 1), (33, 2, 5)])
def test_equals_reference_with_derivatives(edges, rows, cols):
    """Square blocks (BSR), a first layer's columns (CSR) and wide blocks, to second derivatives."""
    blocks, x, target, source = case(edges, 6, 7, rows, cols)
    assert_matches_reference(lambda b, v: block_aggregate(b, v, torch.stack([source, target]), 6),
                             lambda b, v: block_aggregate_reference(b, v, torch.stack([source, target]), 6), [blocks, x])


@pytest.mark.parametrize("rows, cols", [(4, 4), (3, 1)])
def test_unsorted_and_repeated_edges(rows, cols):
    """Edges in any order, and the same (target, source) pair twice (a small periodic cell's images)."""
    blocks, x, target, source = case(30, 5, 5, rows, cols, sort=False)
    target[1], source[1] = target[0], source[0]
    with backend("triton"):
        assert sparse_product_available(x)
        out = block_aggregate(blocks, x, torch.stack([source, target]), 5)
    torch.testing.assert_close(out, block_aggregate_reference(blocks, x, torch.stack([source, target]), 5), rtol=1e-12, atol=1e-12)


def test_float32_and_a_target_without_edges():
    blocks, x, target, source = case(200, 9, 9, 9, 9, channels=16, dtype=torch.float32)
    target = torch.where(target == 4, torch.full_like(target, 3), target)
    out = block_aggregate(blocks, x, torch.stack([source, target]), 9)
    assert bool((out[4] == 0).all())
    torch.testing.assert_close(out, block_aggregate_reference(blocks, x, torch.stack([source, target]), 9), rtol=1e-5, atol=1e-5)


def test_torch_backend_takes_the_reference():
    _, x, _, _ = case(3, 2, 2, 2, 2)
    with backend("torch"):
        assert not sparse_product_available(x)


def test_a_pattern_is_reused_for_the_same_edges_only():
    """Layers of one call share the edge_index's pattern; new or edited edges get their own."""
    from mlip.kernels import block_sparse

    blocks, x, target, source = case(40, 6, 6, 3, 3)
    edge_index = torch.stack([source, target])
    with backend("triton"):
        first = block_aggregate(blocks, x, edge_index, 6)
        pattern = block_sparse._last_pattern[2]
        block_aggregate(blocks, x, edge_index, 6)
        assert block_sparse._last_pattern[2] is pattern
        edge_index[0] = edge_index[0].flip(0)  # edited in place: a new version
        edited = block_aggregate(blocks, x, edge_index, 6)
        assert block_sparse._last_pattern[2] is not pattern
    torch.testing.assert_close(edited, block_aggregate_reference(blocks, x, edge_index, 6))
    assert not torch.allclose(edited, first)

import pytest
import torch

from mlip.kernels import backend, neighbor_attention, neighbor_attention_reference
from mlip.kernels.launch import launches
from tests.kernels.compare import assert_matches_reference, on_device


def case(atoms: int, heads: int, slots: int, dim: int, dtype=torch.float64, padded_atom=None):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(atoms, heads, slots, dim, generator=g, dtype=dtype).requires_grad_() for _ in range(3))
    bias = torch.randn(atoms, slots, generator=g, dtype=dtype)
    if padded_atom is not None:  # an atom with no neighbours: only slot 0 (the atom itself) is a key
        bias[padded_atom, 1:] = float("-inf")
    if atoms > 1:
        bias[0, slots // 2:] = float("-inf")  # padding
    return on_device(q, k, v, bias.requires_grad_())


@pytest.mark.parametrize("atoms, heads, slots, dim", [(0, 2, 3, 4), (1, 1, 2, 3), (3, 2, 5, 3), (2, 2, 19, 5)])
def test_equals_reference_with_derivatives(atoms, heads, slots, dim):
    q, k, v, bias = case(atoms, heads, slots, dim, padded_atom=atoms - 1 if atoms > 1 else None)
    assert_matches_reference(lambda q, k, v, b: neighbor_attention(q, k, v, b, 0.4),
                             lambda q, k, v, b: neighbor_attention_reference(q, k, v, b, 0.4), [q, k, v, bias])


def test_any_neighbour_count_and_head_size_in_tiles():
    """More slots than a tile (32), more channels than a tile (64), two heads, inputs laid out as the
    models pass them ((N, K, heads, D) transposed): the looped tiles, no limit."""
    q, k, v, bias = case(2, 2, 70, 72, padded_atom=1)
    q, k, v = (t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_() for t in (q, k, v))
    v = v[..., :40].detach().requires_grad_()
    assert_matches_reference(lambda q, k, v, b: neighbor_attention(q, k, v, b, 0.2),
                             lambda q, k, v, b: neighbor_attention_reference(q, k, v, b, 0.2), [q, k, v, bias],
                             gradcheck=False)


def test_forces_take_the_fused_backward_and_float32_agrees():
    q, k, v, bias = case(3, 2, 150, 8, dtype=torch.float32)
    launches.clear()
    with backend("triton"):
        out = neighbor_attention(q, k, v, bias, 0.35)
        grads = torch.autograd.grad(out.square().sum(), [q, k, v, bias])
    assert launches["neighbor_attention"] == 1 and launches["neighbor_attention_backward"] == 2, dict(launches)
    reference = neighbor_attention_reference(q, k, v, bias, 0.35)
    expected = torch.autograd.grad(reference.square().sum(), [q, k, v, bias])
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)

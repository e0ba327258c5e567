import pytest
import torch

from mlip.kernels import backend, neighbor_attention, neighbor_attention_reference
from tests.kernels.compare import assert_matches_reference


def case(atoms: int, heads: int, slots: int, dim: int, dtype=torch.float64, padded_atom=None):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(atoms, heads, slots, dim, generator=g, dtype=dtype).requires_grad_() for _ in range(3))
    bias = torch.randn(atoms, slots, generator=g, dtype=dtype)
    if padded_atom is not None:  # an atom with no neighbours: only slot 0 (the atom itself) is a key
        bias[padded_atom, 1:] = float("-inf")
    if atoms > 1:
        bias[0, slots // 2:] = float("-inf")  # padding
    return q, k, v, bias.requires_grad_()


@pytest.mark.parametrize("atoms, heads, slots, dim", [(0, 2, 3, 4), (1, 1, 2, 3), (3, 2, 5, 3), (2, 2, 19, 5)])
def test_equals_reference_with_derivatives(atoms, heads, slots, dim):
    q, k, v, bias = case(atoms, heads, slots, dim, padded_atom=atoms - 1 if atoms > 1 else None)
    assert_matches_reference(lambda q, k, v, b: neighbor_attention(q, k, v, b, 0.4),
                             lambda q, k, v, b: neighbor_attention_reference(q, k, v, b, 0.4), [q, k, v, bias])


def test_64_neighbours_float32_and_the_limit():
    q, k, v, bias = case(2, 2, 65, 8, dtype=torch.float32)
    with backend("triton"):
        out = neighbor_attention(q, k, v, bias, 0.35)
        torch.testing.assert_close(out, neighbor_attention_reference(q, k, v, bias, 0.35), rtol=1e-5, atol=1e-5)
        q, k, v, bias = case(1, 1, 66, 4, dtype=torch.float32)
        with pytest.raises(ValueError, match="at most 64 neighbours"):
            neighbor_attention(q, k, v, bias, 0.5)

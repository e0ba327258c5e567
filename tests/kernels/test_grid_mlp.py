import pytest
import torch

from mlip.kernels import backend, grid_mlp, grid_mlp_reference
from mlip.nn.grid_mlp import GridProductMLP
from tests.kernels.compare import assert_matches_reference


def case(nodes: int, lmax: int, channels: int, hidden: int, channels_out: int, dtype=torch.float64):
    torch.manual_seed(0)
    module = GridProductMLP(lmax, channels, hidden, channels_out).to(dtype)
    x = torch.randn(nodes, (lmax + 1) ** 2, channels, dtype=dtype).requires_grad_()
    grid = (module.grid.to_grid_matrix, module.grid.from_grid_matrix)
    weights = [module.left.weight, module.left.bias, module.right.weight, module.right.bias, module.out.weight]
    return module, x, grid, weights


@pytest.mark.parametrize("nodes, lmax, channels, hidden, channels_out", [(0, 1, 2, 3, 2), (1, 1, 3, 5, 2),
                                                                         (3, 2, 5, 7, 3)])
def test_equals_reference_with_derivatives(nodes, lmax, channels, hidden, channels_out):
    _, x, grid, weights = case(nodes, lmax, channels, hidden, channels_out)
    assert_matches_reference(lambda x, lw, ob: grid_mlp(x, *grid, lw, weights[1], weights[2], weights[3], ob),
                             lambda x, lw, ob: grid_mlp_reference(x, *grid, lw, weights[1], weights[2], weights[3], ob),
                             [x, weights[0], weights[4]])


def test_module_is_the_fused_kernel_and_float32_agrees():
    module, x, grid, weights = case(5, 2, 6, 20, 6, dtype=torch.float32)
    with backend("triton"):
        fused = module(x)
    with backend("torch"):
        reference = module(x)
    g = torch.einsum("ps,nsc->npc", *grid[:1], x)  # the layer as the paper writes it, grid tensor in full
    direct = torch.einsum("sp,npc->nsc", grid[1], module.out(module.left(g) * module.right(g)))
    torch.testing.assert_close(reference, direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)

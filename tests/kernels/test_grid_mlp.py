import pytest
import torch

from mlip.kernels import backend, grid_mlp, grid_mlp_reference
from mlip.kernels.launch import launches
from mlip.nn.grid_mlp import GridProductMLP
from tests.kernels.compare import DEVICE, assert_matches_reference


def case(nodes: int, lmax: int, channels: int, hidden: int, channels_out: int, dtype=torch.float64, device=DEVICE):
    torch.manual_seed(0)
    module = GridProductMLP(lmax, channels, hidden, channels_out).to(dtype=dtype, device=device)
    x = torch.randn(nodes, (lmax + 1) ** 2, channels, dtype=dtype).to(device).requires_grad_()
    grid = (module.grid.to_grid_matrix, module.grid.from_grid_matrix)
    weights = [module.left.weight, module.left.bias, module.right.weight, module.right.bias, module.out.weight]
    return module, x, grid, weights


@pytest.mark.parametrize("nodes, lmax, channels, hidden, channels_out", [(0, 1, 2, 3, 2), (1, 1, 3, 5, 2),
                                                                         (3, 2, 5, 7, 3), (1, 3, 33, 33, 65)])
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


def test_forces_take_the_fused_backward_and_weights_the_reference():
    """The gradient for x alone (forces) runs the backward kernel; when the weights want gradients
    too (training), the reference serves them; both equal the reference's."""
    module, x, grid, weights = case(4, 2, 36, 40, 36)
    for wrt in ([x], [x] + weights):
        launches.clear()
        with backend("triton"):
            grads = torch.autograd.grad(module(x).square().sum(), wrt)
        with backend("torch"):
            expected = torch.autograd.grad(module(x).square().sum(), wrt)
        assert launches["grid_mlp_backward"] == (1 if len(wrt) == 1 else 0), dict(launches)
        for g, e in zip(grads, expected):
            torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nodes, lmax, channels, hidden, channels_out", [(3, 2, 5, 7, 3), (1, 3, 33, 33, 65)])
def test_fused_backward_for_x_with_derivatives(nodes, lmax, channels, hidden, channels_out):
    _, x, grid, weights = case(nodes, lmax, channels, hidden, channels_out)
    fixed = [w.detach() for w in weights]
    assert_matches_reference(lambda x: grid_mlp(x, *grid, *fixed), lambda x: grid_mlp_reference(x, *grid, *fixed), [x])


@pytest.mark.parametrize("nodes", [0, 3, 70])  # none, one block, several blocks of GRID_NODES atoms
@pytest.mark.parametrize("constant_harmonic", [True, False])
def test_cpu_inference_path_equals_reference_with_derivatives(nodes, constant_harmonic):
    """The CPU implementation (eval mode: channel maps on the coefficients, blocks of atoms, no
    stored grid) against the reference, weights' gradients and second derivatives included; with
    the spherical grid (its first column, Y_00, constant: the biases go on that coefficient) and
    with a projection whose first column varies (the biases added on the grid)."""
    _, x, grid, weights = case(nodes, 2, 5, 7, 4, device="cpu")
    if not constant_harmonic:
        to_grid = grid[0].clone()
        to_grid[:, 0] += torch.linspace(0.0, 0.5, to_grid.shape[0], dtype=to_grid.dtype)
        grid = (to_grid, grid[1])
    assert_matches_reference(
        lambda x, lw, ob: grid_mlp(x, *grid, lw, weights[1], weights[2], weights[3], ob, inference=True),
        lambda x, lw, ob: grid_mlp_reference(x, *grid, lw, weights[1], weights[2], weights[3], ob),
        [x, weights[0], weights[4]], kernel_backend="auto")


def test_eval_mode_forces_run_the_cpu_forward_and_backward(monkeypatch):
    """A module in eval mode on CPU runs the CPU forward and, for forces (x alone), the CPU
    backward with the forward's coefficients; in training mode the reference; the gradients agree."""
    import importlib

    kernel = importlib.import_module("mlip.kernels.grid_mlp")  # the module (mlip.kernels.grid_mlp is also the function)

    module, x, _, _ = case(70, 2, 8, 16, 8, device="cpu")
    calls = {"forward": 0, "backward": 0, "coefficients": 0}

    def spy(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(kernel, "_forward_cpu", spy("forward", kernel._forward_cpu))
    monkeypatch.setattr(kernel, "_backward_cpu", spy("backward", kernel._backward_cpu))
    monkeypatch.setattr(kernel, "_coefficients", spy("coefficients", kernel._coefficients))
    expected = torch.autograd.grad(module(x).square().sum(), x)[0]  # training mode: the reference
    assert calls == {"forward": 0, "backward": 0, "coefficients": 0}
    module.eval()
    forces_like = torch.autograd.grad(module(x).square().sum(), x)[0]
    assert calls == {"forward": 1, "backward": 1, "coefficients": 1}  # the backward takes the forward's
    torch.testing.assert_close(forces_like, expected, rtol=1e-10, atol=1e-12)

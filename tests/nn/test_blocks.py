"""Every equivariant block commutes with rotations (exactly, in float64); radial functions are smooth."""

import pytest
import torch

from mlip.nn import (EdgeTensorProduct, GridProductMLP, PolynomialEnvelope, RadialMLP, S2Grid, SO3Linear, SplineRadial,
                     SO3RMSNorm, block_wigner_D, coupling, cubic_bspline_basis, parity_paths, random_rotation,
                     spherical_harmonics, wigner_D)
from mlip.testing import feature_equivariance_error


def features(lmax, channels=5, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, (lmax + 1) ** 2, channels, dtype=torch.float64, generator=g)


@pytest.mark.parametrize("l1,l2,l3", [(1, 1, 2), (2, 2, 2), (1, 2, 3), (3, 3, 6), (2, 1, 1), (0, 4, 4)])
def test_coupling_is_an_intertwiner(l1, l2, l3):
    r = random_rotation()
    c = coupling(l1, l2, l3)
    a, b = torch.randn(2 * l1 + 1, dtype=torch.float64), torch.randn(2 * l2 + 1, dtype=torch.float64)
    lhs = torch.einsum("abc,a,b->c", c, wigner_D(l1, r) @ a, wigner_D(l2, r) @ b)
    rhs = wigner_D(l3, r) @ torch.einsum("abc,a,b->c", c, a, b)
    torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=0)
    with pytest.raises(ValueError):
        coupling(1, 1, 1)  # odd parity: no polar coupling


def test_grid_round_trip_is_exact():
    grid = S2Grid(4, degree=8).double()
    x = features(4)
    torch.testing.assert_close(grid.from_grid(grid.to_grid(x)), x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_grid_mlp_is_exactly_equivariant(lmax):
    torch.manual_seed(0)
    mlp = GridProductMLP(lmax, 5, 11).double()
    assert feature_equivariance_error(mlp, features(lmax), lmax) < 1e-12


def test_grid_mlp_with_silu_would_not_be():
    # the reason for the product nonlinearity: SiLU on the same grid breaks equivariance
    torch.manual_seed(0)
    mlp = GridProductMLP(2, 5, 11).double()

    def silu_version(x):
        g = mlp.grid.to_grid(x)
        return mlp.grid.from_grid(mlp.out(torch.nn.functional.silu(mlp.left(g))))

    assert feature_equivariance_error(silu_version, features(2), 2) > 1e-4


def test_linear_and_norm_are_equivariant():
    torch.manual_seed(0)
    for block in (SO3Linear(3, 5, 6).double(), SO3RMSNorm(3, 5).double()):
        assert feature_equivariance_error(block, features(3), 3) < 1e-12


def test_linear_and_norm_follow_their_per_degree_definitions():
    """SO3Linear: x_l W_l per degree, the bias on l = 0; SO3RMSNorm: l = 0 centred over channels,
    each degree over sqrt(its mean square + floor x the overall one + eps), times its gain."""
    torch.manual_seed(0)
    x = features(2, channels=5, n=7)
    linear = SO3Linear(2, 5, 6).double()
    with torch.no_grad():
        linear.bias.normal_()
    norm = SO3RMSNorm(2, 5).double()
    with torch.no_grad():
        norm.gain.normal_()
    blocks = [slice(l * l, (l + 1) * (l + 1)) for l in range(3)]
    expected = torch.cat([x[:, b] @ linear.weight[l] for l, b in enumerate(blocks)], dim=1)
    expected[:, 0] += linear.bias
    torch.testing.assert_close(linear(x), expected)
    centred = torch.cat([x[:, :1] - x[:, :1].mean(-1, keepdim=True), x[:, 1:]], dim=1)
    overall = centred.pow(2).mean(dim=(1, 2))
    parts = []
    for l, b in enumerate(blocks):
        rms = torch.sqrt(centred[:, b].pow(2).mean(dim=(1, 2)) + norm.floor * overall + norm.eps)
        parts.append(centred[:, b] / rms[:, None, None] * norm.gain[l])
    torch.testing.assert_close(norm(x), torch.cat(parts, dim=1))


@pytest.mark.parametrize("heads", [1, 5])
def test_edge_tensor_product_is_equivariant(heads):
    torch.manual_seed(0)
    tp = EdgeTensorProduct(2, 3, 2).double()
    assert len(tp.paths) == len(parity_paths(2, 3, 2))
    x = features(2, channels=5, n=9)
    vec = torch.randn(9, 3, dtype=torch.float64)
    w = torch.randn(9, tp.num_paths, heads, dtype=torch.float64)
    r = random_rotation()
    d2 = block_wigner_D(2, r)
    out = tp(x, spherical_harmonics(3, vec), w)
    rotated = tp(torch.einsum("ab,nbc->nac", d2, x), spherical_harmonics(3, vec @ r.T), w)
    torch.testing.assert_close(rotated, torch.einsum("ab,nbc->nac", d2, out), atol=1e-12, rtol=0)


@pytest.mark.parametrize("channels, heads", [(32, 1), (32, 2), (32, 4), (6, 3)])
def test_edge_tensor_product_orders_agree(channels, heads):
    """Paths first and weights first (chosen by channels per head) compute the same product."""
    torch.manual_seed(0)
    tp = EdgeTensorProduct(2, 2, 2).double()
    x = features(2, channels=channels, n=11)
    sh = spherical_harmonics(2, torch.randn(11, 3, dtype=torch.float64))
    w = torch.randn(11, tp.num_paths, heads, dtype=torch.float64)
    results = []
    for paths_first in (True, False):
        tp.channels_first = lambda c, h, first=paths_first: first
        results.append(tp(x, sh, w))
    torch.testing.assert_close(results[0], results[1], atol=1e-12, rtol=0)
    assert EdgeTensorProduct.channels_first(tp, 96, 1) is False and EdgeTensorProduct.channels_first(tp, 32, 4)


@pytest.mark.parametrize("channels, heads, training", [(8, 1, True), (64, 2, True), (8, 4, True), (8, 4, False)])
def test_aggregate_sums_the_edge_messages(channels, heads, training):
    """``aggregate`` (block-sparse product when weights come first, and in eval mode) equals the
    edge messages summed at their targets, for any features and, on features with l >= 1 zero,
    ``aggregate_invariant`` (the first layer's shortcut) too; forces-style gradients included."""
    from mlip.nn.scatter import scatter_sum

    torch.manual_seed(0)
    tp = EdgeTensorProduct(2, 2, 2).double().train(training)
    assert tp.blocks_first(torch.zeros(1, 9, channels, dtype=torch.float64), heads) == (channels // heads >= 16 or not training)
    x = features(2, channels=channels, n=5).requires_grad_()
    edge_index = torch.tensor([[0, 1, 4, 4, 2, 3, 0, 1, 2, 3, 4], [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]])
    vec = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(11, tp.num_paths, heads, dtype=torch.float64)
    invariant = x.detach().clone()
    invariant[:, 1:] = 0.0

    def summed(x):
        return scatter_sum(tp.edge_messages(x, edge_index[0], spherical_harmonics(2, vec), w), edge_index[1], 5)

    for inputs, call, expected in ((x, tp.aggregate, summed(x)), (invariant, tp.aggregate_invariant, summed(invariant))):
        out = call(inputs, edge_index, spherical_harmonics(2, vec), w)
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
        projection = torch.randn_like(out)
        grad = torch.autograd.grad((out * projection).sum(), vec)[0]
        torch.testing.assert_close(grad, torch.autograd.grad((expected * projection).sum(), vec)[0],
                                   atol=1e-11, rtol=0)
    assert summed(invariant)[:, 1:].abs().max() > 0.1  # the harmonics carry the invariant features to every degree


@pytest.mark.parametrize("heads", [1, 3])
def test_edge_blocks_outer_product_backward_to_second_order(heads):
    """The per-edge blocks' outer product (batched-matmul backward) against plain broadcasting, with
    gradcheck and gradgradcheck; the scripted module (broadcasting) gives the same blocks."""
    from mlip.nn.tensor_product import _Outer

    torch.manual_seed(0)
    a = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(_Outer.apply, (a, b))
    torch.autograd.gradgradcheck(_Outer.apply, (a, b))
    torch.testing.assert_close(_Outer.apply(a, b), a.unsqueeze(-1) * b.unsqueeze(-2), rtol=0, atol=0)
    tp = EdgeTensorProduct(2, 2, 2).double()
    sh = spherical_harmonics(2, torch.randn(7, 3, dtype=torch.float64))
    w = torch.randn(7, tp.num_paths, heads, dtype=torch.float64, requires_grad=True)
    eager = tp.edge_blocks(sh, w, tp.path_couplings)
    scripted = torch.jit.script(tp).edge_blocks(sh, w, tp.path_couplings)
    torch.testing.assert_close(eager, scripted, rtol=1e-12, atol=1e-12)
    grads = [torch.autograd.grad(out.square().sum(), w)[0] for out in (eager, scripted)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_float32_model_moved_to_float64_has_exact_constants():
    tp = EdgeTensorProduct(2, 2, 2)
    assert tp.table.dtype == torch.float32
    tp = tp.double()
    exact = coupling(1, 1, 2) * 5**0.5
    row = next(i for i, p in enumerate(tp.paths) if p == (1, 1, 2))
    start = sum(2 * l3 + 1 for *_, l3 in tp.paths[:row])
    torch.testing.assert_close(tp.table[start:start + 5, 1:4, 1:4], exact.permute(2, 0, 1), atol=1e-15, rtol=0)


def test_bspline_partition_of_unity_and_smoothness():
    r = torch.linspace(0, 5.0, 2001, dtype=torch.float64)
    basis = cubic_bspline_basis(r, 10, 5.0)
    torch.testing.assert_close(basis.sum(1), torch.ones_like(r))
    # C2: second differences stay bounded across the knots (no kinks)
    second = basis[2:] - 2 * basis[1:-1] + basis[:-2]
    assert second.abs().max() < 1e-4


def test_spline_radial_from_a_shared_basis_is_the_kernels_spline():
    """The blocks' shared basis times the table equals the B-spline kernel's reference times the
    envelope, values and r-derivatives (what CUDA computes per block from the table)."""
    from mlip.kernels.bspline import bspline_reference

    torch.manual_seed(0)
    radial = SplineRadial(7, 5.0, num_basis=10).double()
    r = torch.linspace(0.5, 5.5, 301, dtype=torch.float64, requires_grad=True)
    shared = radial(r, radial.shared_basis(r))
    table = bspline_reference(r, radial.coefficients, 5.0) * radial.basis.envelope(r).unsqueeze(-1)
    torch.testing.assert_close(shared, table)
    g = torch.randn_like(shared)
    torch.testing.assert_close(torch.autograd.grad(shared, r, g)[0], torch.autograd.grad(table, r, g)[0])


def test_envelope_vanishes_smoothly_at_cutoff():
    env = PolynomialEnvelope(4.0, exponent=5)
    r = torch.tensor([3.999, 4.0, 4.5], dtype=torch.float64, requires_grad=True)
    u = env(r)
    (du,) = torch.autograd.grad(u.sum(), r)
    assert u[1] == 0 and u[2] == 0 and abs(float(u[0])) < 1e-6
    assert abs(float(du[0])) < 1e-4 and du[2] == 0
    assert float(env(torch.tensor(0.0))) == 1.0


def test_radial_mlp_vanishes_smoothly_at_cutoff_and_starts_order_one():
    torch.manual_seed(0)
    radial = RadialMLP(44, 4.0, num_basis=8).double()
    r = torch.tensor([3.999, 4.0, 4.5], dtype=torch.float64, requires_grad=True)
    w = radial(r)
    (dw,) = torch.autograd.grad(w.pow(2).sum(), r)
    assert w[1:].abs().max() == 0 and w[0].abs().max() < 1e-5
    assert dw[0].abs() < 1e-8 and dw[2] == 0
    # the weights a message sees at initialisation are O(1) over bonded distances (no tiny start)
    rms = float(radial(torch.linspace(0.9, 3.9, 500, dtype=torch.float64)).pow(2).mean().sqrt())
    assert 0.2 < rms < 2.0

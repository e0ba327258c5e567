import pytest
import torch

from mlip.kernels.gaunt import gaunt_edge_product, gaunt_edge_product_reference
from mlip.nn.gaunt import EdgeGauntProduct, fourier_projection
from tests.kernels.compare import DEVICE, assert_matches_reference, on_device


def case(nodes: int, edges: int, lmax_in: int, lmax_sh: int, lmax_out: int, channels: int, heads: int,
         dtype=torch.float64):
    """Random node and edge grids (any complex values: the kernel is bilinear, not only on
    spectra of real functions), a random source per edge, the exact projection."""
    g = torch.Generator().manual_seed(edges + 7 * lmax_in)
    n1, n2 = 2 * lmax_in + 1, 2 * lmax_sh + 1
    x = torch.randn(nodes, channels, 2, n1 * n1, generator=g, dtype=dtype).requires_grad_()
    y = torch.randn(edges, heads, 2, n2 * n2, generator=g, dtype=dtype).requires_grad_()
    source = torch.randint(0, nodes, (edges,), generator=g)
    p = torch.from_numpy(fourier_projection(lmax_out, lmax_in + lmax_sh))
    proj = torch.stack([p.real, p.imag], dim=1).reshape(p.shape[0], 2, -1).to(dtype)
    return on_device(x, y) + (source.to(DEVICE), proj.to(DEVICE))


@pytest.mark.parametrize("nodes, edges, lmax_in, lmax_sh, lmax_out, channels, heads",
                         [(3, 0, 1, 1, 1, 2, 1), (2, 1, 1, 1, 2, 3, 1), (4, 9, 2, 2, 2, 4, 2), (5, 7, 2, 1, 3, 18, 1),
                          (3, 4, 3, 3, 3, 35, 1)])  # 35 channels: two channel blocks; lmax 3: two coefficient chunks
def test_equals_reference_with_derivatives(nodes, edges, lmax_in, lmax_sh, lmax_out, channels, heads):
    x, y, source, proj = case(nodes, edges, lmax_in, lmax_sh, lmax_out, channels, heads)
    assert_matches_reference(lambda x, y: gaunt_edge_product(x, source, y, proj),
                             lambda x, y: gaunt_edge_product_reference(x, source, y, proj), [x, y],
                             gradcheck=edges < 8 and channels < 8)


def test_float32_matches_float64():
    x, y, source, proj = case(4, 6, 2, 2, 2, 8, 2)
    from mlip.kernels import backend

    with backend("triton"):
        single = gaunt_edge_product(x.float(), source, y.float(), proj.float())
    double = gaunt_edge_product_reference(x, source, y, proj)
    torch.testing.assert_close(single.double(), double, rtol=1e-5, atol=1e-5)


def test_edge_gaunt_product_runs_the_kernel_and_equals_its_torch_route():
    """EdgeGauntProduct.edge_messages through the kernel equals the torch route, with forces-style
    second derivatives, on real node features and harmonics (lmax 2, two radial heads)."""
    from mlip.kernels import backend
    from mlip.kernels.launch import launches
    from mlip.nn.spherical_harmonics import spherical_harmonics

    torch.manual_seed(0)
    module = EdgeGauntProduct(2, 2, 2).double().to(DEVICE)
    nodes, edges, channels, heads = 5, 11, 6, 2
    x = torch.randn(nodes, 9, channels, dtype=torch.float64, device=DEVICE, requires_grad=True)
    vec = torch.randn(edges, 3, dtype=torch.float64, device=DEVICE, requires_grad=True)
    weights = torch.randn(edges, module.num_paths, heads, dtype=torch.float64, device=DEVICE, requires_grad=True)
    source = torch.randint(0, nodes, (edges,), device=DEVICE)

    def messages(x, vec, weights):
        return module.edge_messages(x, source, spherical_harmonics(2, vec), weights)

    before = launches["gaunt_edge"]
    assert_matches_reference(messages, messages, [x, vec, weights], gradcheck=False)
    assert launches["gaunt_edge"] > before

"""Run as ``python -m tests.kernels.compiled_operators LIBRARY``: loads mlip's compiled operator
library (csrc/mlip_ops.cpp) before mlip, so the operators are the C++ ones, and checks them
against the torch references: values, first and second derivatives, gradcheck and gradgradcheck;
float32; edges in any order; an edge_index edited in place. Prints "ok" at the end."""

import sys

import torch

torch.ops.load_library(sys.argv[1])
assert hasattr(torch.ops.mlip, "block_aggregate") and hasattr(torch.ops.mlip, "grid_mlp")

from mlip.kernels import block_aggregate_reference, grid_mlp_reference  # noqa: E402  (after the library)
from mlip.kernels.operators import _library  # noqa: E402
from tests.kernels.compare import assert_matches_reference  # noqa: E402
from tests.kernels.test_block_sparse import case  # noqa: E402
from tests.kernels.test_grid_mlp import case as grid_case  # noqa: E402

assert _library is None, "mlip registered its Python kernels over the compiled operators"
ops = torch.ops.mlip

for edges, rows, cols, sort in [(0, 3, 3, True), (1, 4, 4, True), (57, 9, 9, True), (40, 9, 1, False),
                                (33, 2, 5, False)]:
    blocks, x, target, source = case(edges, 6, 7, rows, cols, sort=sort)
    edge_index = torch.stack([source, target])
    assert_matches_reference(lambda b, v: ops.block_aggregate(b, v, edge_index, 6),
                             lambda b, v: block_aggregate_reference(b, v, edge_index, 6), [blocks, x],
                             kernel_backend="auto")

blocks, x, target, source = case(200, 9, 9, 9, 9, channels=16, dtype=torch.float32, sort=False)
edge_index = torch.stack([source, target])
torch.testing.assert_close(ops.block_aggregate(blocks, x, edge_index, 9),
                           block_aggregate_reference(blocks, x, edge_index, 9), rtol=1e-5, atol=1e-4)
edge_index[0] = edge_index[0].flip(0)  # edited in place: the cached pattern must not serve it
torch.testing.assert_close(ops.block_aggregate(blocks, x, edge_index, 9),
                           block_aggregate_reference(blocks, x, edge_index, 9), rtol=1e-5, atol=1e-4)

for nodes in (0, 3, 70):
    for constant_harmonic in (True, False):
        _, x, grid, weights = grid_case(nodes, 2, 5, 7, 4, device="cpu")
        if not constant_harmonic:
            to_grid = grid[0].clone()
            to_grid[:, 0] += torch.linspace(0.0, 0.5, to_grid.shape[0], dtype=to_grid.dtype)
            grid = (to_grid, grid[1])
        fixed = [w.detach() for w in weights]
        assert_matches_reference(lambda v: ops.grid_mlp(v, *grid, *fixed), lambda v: grid_mlp_reference(v, *grid, *fixed),
                                 [x], kernel_backend="auto")  # forces: the C++ forward and backward
        assert_matches_reference(  # weights that want gradients: the reference
            lambda v, lw, ob: ops.grid_mlp(v, *grid, lw, weights[1], weights[2], weights[3], ob),
            lambda v, lw, ob: grid_mlp_reference(v, *grid, lw, weights[1], weights[2], weights[3], ob),
            [x, weights[0], weights[4]], kernel_backend="auto")
_, x, grid, weights = grid_case(70, 2, 8, 16, 8, dtype=torch.float32, device="cpu")
fixed = [w.detach() for w in weights]
torch.testing.assert_close(ops.grid_mlp(x, *grid, *fixed), grid_mlp_reference(x, *grid, *fixed), rtol=1e-5, atol=1e-5)
print("ok")

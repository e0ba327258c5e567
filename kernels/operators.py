"""The operators an exported TorchScript file calls: ``mlip::block_aggregate`` and ``mlip::grid_mlp``.

TorchScript takes no autograd Function, so the scripted models call these two operators, whose
kernels are mlip.kernels' own (the sparse product and the grid MLP's CPU implementation with their
custom backward): the exported file runs at eager's speed. Importing mlip registers them for
Python (kernels: :func:`mlip.kernels.block_aggregate` and :func:`mlip.kernels.grid_mlp` in
inference mode); a C++ program compiles ``SOURCE`` (csrc/mlip_ops.cpp: the same schemas, the same CPU
implementations and backward, the reference on other devices) into itself before loading a file,
as LAMMPS's pair_style mlip and examples/cpp do.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mlip.kernels.block_sparse import block_aggregate
from mlip.kernels.grid_mlp import grid_mlp

SOURCE = Path(__file__).resolve().parent / "csrc" / "mlip_ops.cpp"
SCHEMAS = {
    "block_aggregate": "block_aggregate(Tensor blocks, Tensor x, Tensor edge_index, int num_targets) -> Tensor",
    "grid_mlp": "grid_mlp(Tensor x, Tensor to_grid, Tensor from_grid, Tensor left_w, Tensor left_b, Tensor right_w, "
                "Tensor right_b, Tensor out_w) -> Tensor",
}


def _grid_mlp_inference(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w):
    return grid_mlp(x, to_grid, from_grid, left_w, left_b, right_w, right_b, out_w, inference=True)


KERNELS = {"block_aggregate": block_aggregate, "grid_mlp": _grid_mlp_inference}
_library = None


def register() -> None:
    """Define the operators with their Python kernels, unless the compiled library (SOURCE) did."""
    global _library
    missing = [name for name in SCHEMAS if not hasattr(torch.ops.mlip, name)]
    if not missing:
        return
    if len(missing) < len(SCHEMAS):
        raise RuntimeError(f"mlip's operators are half registered (missing {missing}): load one library only")
    _library = torch.library.Library("mlip", "FRAGMENT")
    for name in SCHEMAS:
        _library.define(SCHEMAS[name])
        _library.impl(name, KERNELS[name], "CompositeImplicitAutograd")


register()

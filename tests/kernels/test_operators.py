"""The operators exported files call (mlip.kernels.operators): registered by importing mlip, what
TorchScript takes, the same numbers as the references; and the compiled C++ library (a fresh
interpreter loads it before mlip) the same again."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlip.kernels import block_aggregate, block_aggregate_reference, grid_mlp, grid_mlp_reference
from mlip.kernels.operators import SCHEMAS
from tests.kernels.compare import assert_matches_reference
from tests.kernels.test_block_sparse import case
from tests.kernels.test_grid_mlp import case as grid_case

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("edges, rows, cols, sort", [(0, 3, 3, True), (57, 9, 9, True), (40, 9, 1, False)])
def test_scripted_block_aggregate_calls_the_operator(edges, rows, cols, sort):
    scripted = torch.jit.script(block_aggregate)
    assert "ops.mlip.block_aggregate" in scripted.code
    blocks, x, target, source = case(edges, 6, 7, rows, cols, sort=sort)
    edge_index = torch.stack([source, target])
    assert_matches_reference(lambda b, v: scripted(b, v, edge_index, 6),
                             lambda b, v: block_aggregate_reference(b, v, edge_index, 6), [blocks, x],
                             kernel_backend="auto")


@pytest.mark.parametrize("nodes", [0, 70])
def test_scripted_grid_mlp_calls_the_operator(nodes):
    module, x, grid, weights = grid_case(nodes, 2, 5, 7, 4, device="cpu")
    assert "ops.mlip.grid_mlp" in torch.jit.script(grid_mlp).code
    scripted = torch.jit.script(module.eval())
    assert_matches_reference(lambda v: scripted(v), lambda v: grid_mlp_reference(v, *grid, *weights), [x],
                             kernel_backend="auto")


def test_every_operator_has_a_schema_and_is_registered():
    for name in SCHEMAS:
        assert hasattr(torch.ops.mlip, name), name
    source = (ROOT / "kernels" / "csrc" / "mlip_ops.cpp").read_text()
    for schema in SCHEMAS.values():  # the C++ library defines the same schemas
        assert " ".join(schema.split()) in " ".join(source.replace('"\n', "").replace('        "', "").split()), schema


def test_compiled_library_equals_the_references(operator_library):
    run = subprocess.run([sys.executable, "-m", "tests.kernels.compiled_operators", str(operator_library)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout[-3000:] + run.stderr[-3000:]

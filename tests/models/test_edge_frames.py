"""The potentials that work in each edge's frame (eSCN, EquiformerV2): the roll of the frame about
the edge, which the frame leaves free, does not change anything."""

import pytest
import torch

from mlip.graph import build_graph
from tests.models.structures import data, make


@pytest.mark.parametrize("name", ["escn", "equiformer_v2"])
@pytest.mark.parametrize("structure", ["ethanol", "triclinic"])
def test_roll_about_the_edge_does_not_matter(name, structure):
    model = make(name)
    d = build_graph(data(structure), model.cutoff)
    ref = model(d)
    model.roll_edges = True  # every edge frame turned by its own random angle
    for _ in range(2):
        out = model(d)
        torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-10, atol=0)
        torch.testing.assert_close(out["forces"], ref["forces"], rtol=1e-8, atol=1e-10)

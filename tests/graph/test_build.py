import numpy as np
import torch
from ase.build import bulk, fcc111

from mlip.data import AtomicData, open_dataset
from mlip.graph import build_graph, collate, edge_vectors


def mixed_structures(data_dir):
    rng = np.random.default_rng(3)
    si = bulk("Si", "diamond", a=5.43) * (2, 2, 2)
    si.positions += rng.normal(scale=0.05, size=si.positions.shape)
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    return [open_dataset(data_dir / "rmd17" / "rmd17_ethanol_train_01.npz")[0], AtomicData.from_ase(si),
            AtomicData.from_ase(slab), open_dataset(data_dir / "extxyz" / "sevennet_hfo2.extxyz")[1]]


def test_batch_equals_one_by_one(data_dir):
    structures = mixed_structures(data_dir)
    batch = build_graph(collate(structures), cutoff=4.5)
    offset, expected_edges, expected_vec = 0, [], []
    for data in structures:
        single = build_graph(data.clone(), cutoff=4.5)
        expected_edges.append(single.edge_index + offset)
        expected_vec.append(edge_vectors(single.pos, single.cell, single.edge_index, single.cell_shifts))
        offset += data.num_nodes
    torch.testing.assert_close(batch.edge_index, torch.cat(expected_edges, dim=1))
    vec = edge_vectors(batch.pos, batch.cell, batch.edge_index, batch.cell_shifts, batch.batch)
    torch.testing.assert_close(vec, torch.cat(expected_vec))
    assert (vec.norm(dim=1) < 4.5).all()
    # edges never cross structures
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])


def test_edge_vectors_carry_gradients_to_pos_and_cell():
    data = build_graph(AtomicData.from_ase(bulk("Cu", "fcc", a=3.6)), cutoff=3.0)
    pos = data.pos.clone().requires_grad_(True)
    cell = data.cell.clone().requires_grad_(True)
    energy = edge_vectors(pos, cell, data.edge_index, data.cell_shifts).norm(dim=1).pow(2).sum()
    grad_pos, grad_cell = torch.autograd.grad(energy, (pos, cell))
    assert grad_cell.abs().sum() > 0
    torch.testing.assert_close(grad_pos, torch.zeros_like(grad_pos))  # one atom: translation-invariant


def test_collate_fills_missing_targets_and_builds_graphs(data_dir):
    structures = mixed_structures(data_dir)
    batch = collate(structures, cutoff=4.5)
    assert batch.num_graphs == 4 and batch.energy.shape == (4,)
    assert torch.isnan(batch.energy[1:3]).all() and not torch.isnan(batch.energy[[0, 3]]).any()
    assert torch.isnan(batch.stress[0]).all() and not torch.isnan(batch.stress[3]).any()
    assert batch.forces.shape == (batch.num_nodes, 3)
    torch.testing.assert_close(batch.edge_index, build_graph(collate(structures), cutoff=4.5).edge_index)
    assert "edge_index" not in structures[0]  # the inputs are left as they were

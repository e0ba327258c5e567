"""EScAIP beyond the shared physics suite: the neighbour table, fixed shapes, the direct-force head
(warns, reports its rotation error, learns the symmetry from rotated batches), the paper-size preset."""

import csv

import numpy as np
import pytest
import torch

from mlip.graph import build_graph, collate
from mlip.models import build
from mlip.nn.neighbor_attention import neighbor_slots, to_slots
from mlip.testing import equivariance_errors, rotation_sensitivity
from mlip.train.run import compose, metric_logs, train
from tests.models.structures import data, make


def test_neighbor_table_is_nearest_first_with_the_atom_in_slot_zero():
    target = torch.tensor([2, 0, 2, 2, 0, 1, 2])
    r = torch.tensor([3.0, 1.5, 1.0, 2.0, 0.5, 9.0, 2.5])
    slot, keep, k = neighbor_slots(target, r, num_nodes=4, max_neighbors=0)
    assert k == 5 and bool(keep.all())  # atom 2 has four neighbours; atom 3 none
    table = to_slots(r, slot, keep, 4, k)
    expected = torch.tensor([[0, 0.5, 1.5, 0, 0], [0, 9.0, 0, 0, 0], [0, 1.0, 2.0, 2.5, 3.0], [0, 0, 0, 0, 0]])
    torch.testing.assert_close(table, expected)
    # a fixed width keeps the nearest ones and drops the rest
    slot, keep, k = neighbor_slots(target, r, num_nodes=4, max_neighbors=2)
    assert k == 3 and keep.tolist() == [False, True, True, True, True, True, False]
    torch.testing.assert_close(to_slots(r, slot, keep, 4, k)[2], torch.tensor([0, 1.0, 2.0]))
    # no edges at all
    slot, keep, k = neighbor_slots(target[:0], r[:0], num_nodes=3, max_neighbors=0)
    assert k == 1 and to_slots(r[:0], slot, keep, 3, k).shape == (3, 1)


def test_padded_atoms_change_nothing_and_shapes_depend_only_on_the_padding():
    plain = make("escaip")
    padded = make("escaip", atom_padding=16)
    batch = collate([data("ethanol"), data("triclinic")], cutoff=plain.cutoff, max_neighbors=plain.max_neighbors)
    a, b = plain(batch), padded(batch)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-10, atol=1e-12)
    shapes = []
    hook = padded.blocks[0].attention.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    for structure in ("ethanol", "slab", "triclinic"):  # 9, 8 and 4 atoms
        padded(data(structure))
    hook.remove()
    assert shapes == [(16, 25, 16)] * 3  # 16 padded atoms, 24 neighbour slots + the atom itself


def test_attention_core_compiles_without_graph_breaks():
    """Fixed shapes: torch.compile(fullgraph=True) captures the whole energy function (graph
    capture only, backend "eager", so that no C++ compiler is needed)."""
    model = make("escaip", atom_padding=16)
    d = build_graph(data("slab"), model.cutoff, model.max_neighbors)
    z, edge_index = d.atomic_numbers, d.edge_index
    vec = d.pos[edge_index[1]] - d.pos[edge_index[0]] + d.cell_shifts.to(d.pos.dtype) @ d.cell[0]
    args = (z, edge_index, vec, z.new_zeros(z.shape[0]), 1, z.new_zeros(1), z.new_ones(1))
    torch._dynamo.reset()
    compiled = torch.compile(model.atom_energies, backend="eager", fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(*args), model.atom_energies(*args), rtol=1e-12, atol=1e-12)


def test_direct_forces_warn_and_report_their_rotation_error(record_property):
    with pytest.warns(UserWarning, match="not the gradient of the energy"):
        model = make("escaip", direct_forces=True)
    assert not model.exactly_equivariant and make("escaip").exactly_equivariant
    d = data("triclinic")
    errors = equivariance_errors(model, d, rotations=3)
    sensitivity = rotation_sensitivity(model, d)
    record_property("direct_force_rotation_error", sensitivity["forces"])
    print(f"EScAIP direct forces, untrained: relative force change under rotations {sensitivity['forces']:.3f}")
    assert errors["energy"] < 1e-10  # the energy stays invariant
    assert errors["forces"] > 1e-3 and sensitivity["forces"] > 1e-3  # the head is not equivariant by construction


def rotation_curve(tmp_path, augment: bool):
    overrides = ["experiment=quickstart", "model=escaip", "model.preset=small", "model.direct_forces=true",
                 f"data.augment_rotations={str(augment).lower()}", "data.train_size=64", "data.test=null",
                 "trainer.max_epochs=10", "trainer.enable_progress_bar=false", f"run_dir={tmp_path}"]
    with pytest.warns(UserWarning, match="not the gradient"):
        summary = train(compose(overrides))
    rows = [r for path in metric_logs(summary["run_dir"]) for r in csv.DictReader(open(path))]
    start = [float(r["start/rotation_forces"]) for r in rows if r.get("start/rotation_forces")]
    val = [float(r["val/rotation_forces"]) for r in rows if r.get("val/rotation_forces")]
    return start[0], val


def test_rotation_augmentation_teaches_the_direct_head_the_symmetry(tmp_path, data_dir, monkeypatch):
    """Training with rotated batches lowers the direct head's rotation error, and more than the same
    training without rotations (same data, seeds and steps)."""
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    start, augmented = rotation_curve(tmp_path / "augmented", True)
    start_plain, plain = rotation_curve(tmp_path / "plain", False)
    print(f"rotation error of the direct forces: start {start:.3f}; after 10 epochs {augmented[-1]:.3f} with "
          f"rotated batches, {plain[-1]:.3f} without")
    assert start == pytest.approx(start_plain)
    assert len(augmented) == 10 and augmented[-1] < 0.5 * start
    assert augmented[-1] < plain[-1]


def test_paper_preset_builds_and_takes_a_training_step():
    torch.manual_seed(0)
    model = build("escaip", preset="paper")
    assert (model.hidden, len(model.blocks), model.blocks[0].attention.heads) == (512, 10, 8)
    assert model.cutoff == 6.0 and model.max_neighbors == 30
    model.train()
    batch = data("slab")  # 8 Cu atoms; every atom keeps its 30 nearest neighbours within 6 Å
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    out = model(batch)
    loss = out["energy"].pow(2).mean() + out["forces"].pow(2).mean()
    loss.backward()
    optimizer.step()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert np.isfinite(float(loss)) and len(grads) > 0 and all(bool(torch.isfinite(g).all()) for g in grads)

"""TransIP beyond the shared physics suite: its rotation error is measured, the alignment loss is a
differentiable training-only term that its transformation network can lower, the baseline has none,
and OMol25 data (charge, spin) runs through it."""

import numpy as np
import pytest
import torch

from mlip.data import open_dataset
from mlip.graph import collate
from mlip.testing import rotation_sensitivity
from tests.models.structures import data, make


def test_rotation_error_is_measured_not_zero(record_property):
    model = make("transip")
    sensitivity = rotation_sensitivity(model, data("ethanol"))
    record_property("transip_rotation_error", sensitivity)
    print(f"TransIP, untrained: forces change by {sensitivity['forces']:.3f} (relative) under rotations")
    assert not model.exactly_equivariant
    assert sensitivity["forces"] > 1e-3 and sensitivity["energy_per_atom"] > 0


def test_alignment_loss_trains_and_the_baseline_has_none():
    torch.manual_seed(0)
    model = make("transip").train()
    batch = collate([data("ethanol"), data("triclinic"), data("slab")], cutoff=model.cutoff,
                    max_neighbors=model.max_neighbors)
    first = model.auxiliary_loss(batch)
    assert first is not None and bool(torch.isfinite(first)) and float(first) > 0
    first.backward()
    for part in (model.transform, model.blocks[0].attention):  # both the network T and the encoder learn
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in part.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(1)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.auxiliary_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    baseline = make("transip", alignment_weight=0.0)
    assert baseline.auxiliary_loss(batch) is None
    assert sum(p.numel() for p in baseline.transform.parameters()) == 0


def test_omol25_charge_and_spin_reach_the_energy(data_dir):
    dataset = open_dataset(data_dir / "omol25" / "omol25_noble_gas_DERIVED.aselmdb")
    frames = [dataset[i] for i in range(len(dataset))]
    assert {int(f.charge) for f in frames} == {-1, 0, 1}
    model = make("transip", charge_spin=True)
    with torch.no_grad():
        model.charge_spin.charge.weight.normal_()
        model.charge_spin.spin.weight.normal_()
    batch = collate(frames[:6], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
    out = model(batch)
    assert out["energy"].shape == (6,) and bool(torch.isfinite(out["forces"]).all())
    recharged = batch.clone()
    recharged.charge = batch.charge + 1
    assert not torch.allclose(model(recharged)["energy"], out["energy"])

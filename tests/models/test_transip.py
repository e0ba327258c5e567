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


def train_alignment(model, batch, steps: int) -> list:
    """The alignment loss alone, minimised by Adam (lr 3e-3) for ``steps`` steps; the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.auxiliary_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


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
    torch.manual_seed(1)
    losses = train_alignment(model, batch, 60)
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


def test_alignment_lowers_the_rotation_error_of_the_augmentation_baseline(tmp_path, data_dir, monkeypatch):
    """The acceptance comparison, brief: the same transformer, data (160 rMD17 ethanol structures,
    rotated batches), seed and 4 epochs, with and without the alignment loss; the rotation error of
    the forces is measured on 32 test structures, on one thread (the figures depend on the thread
    count; two threads beside another test worker oversubscribe the cores). Measured while writing
    this test with the "offset" position encoding, seeds 0, 1, 2: 0.51 / 1.06, 0.27 / 0.96,
    0.24 / 0.81. With TransIP's default encoding ("none", which learns forces sooner) the baseline
    is ahead (docs/benchmarks.md, "Routes to rotational symmetry": benchmarks/bench_symmetry.py)."""
    from mlip import load
    from mlip.train.data import rmd17
    from mlip.train.run import compose, rotation_report, train

    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    test = rmd17("ethanol", root=str(data_dir / "rmd17")).build_splits()["test"]
    errors = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for weight in (0.1, 0.0):
            summary = train(compose(["experiment=quickstart", "model=transip", "model.preset=quickstart",
                                     "model.position_encoding=offset",
                                     "data.train_size=160", "data.augment_rotations=true", "+data.test=null",
                                     f"model.alignment_weight={weight}", "trainer.max_epochs=4",
                                     "trainer.check_val_every_n_epoch=4", "trainer.max_time=null", "seed=0",
                                     "trainer.enable_progress_bar=false", f"name=w{weight}",
                                     f"run_dir={tmp_path}"]))
            model = load(summary["best"])
            errors[weight] = rotation_report(model, test, model.cutoff, 16, model.max_neighbors,
                                             max_batches=2)["forces"]
    finally:
        torch.set_num_threads(threads)
    print(f"rotation error of forces: TransIP {errors[0.1]:.3f}, augmentation baseline {errors[0.0]:.3f}")
    assert errors[0.1] < 0.85 * errors[0.0], errors


def test_rotary_scores_see_relative_positions_only():
    from mlip.nn.rotary import rotary_frequencies, rotate_pairs

    g = torch.Generator().manual_seed(0)
    frequencies = rotary_frequencies(12, max_wavelength=16.0)
    q, k = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
    p_s, p_t = torch.randn(3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    score = rotate_pairs(q, p_s, frequencies) @ rotate_pairs(k, p_t, frequencies)
    shifted = rotate_pairs(q, p_s + 3.7, frequencies) @ rotate_pairs(k, p_t + 3.7, frequencies)
    relative = q @ rotate_pairs(k, p_t - p_s, frequencies)
    assert float(score) == pytest.approx(float(relative), rel=1e-12)
    assert float(shifted) == pytest.approx(float(score), rel=1e-12)
    assert float(rotate_pairs(k, p_t * 2, frequencies) @ q) != pytest.approx(float(score))


def test_rotary_transip_uses_positions_in_attention_only():
    model = make("transip", position_encoding="rotary")
    assert sum(p.numel() for p in model.position.parameters()) == 0  # no position token
    assert model.blocks[0].attention.rotary_frequencies.numel() > 0
    d = data("ethanol")
    moved = d.clone()
    moved.pos = d.pos.clone()
    moved.pos[0] += torch.tensor([0.05, -0.02, 0.03], dtype=d.pos.dtype)
    assert float(model(moved)["energy"] - model(d)["energy"]) != 0.0


def test_alignment_weight_schedule():
    model = make("transip", alignment_warmup=0.2, alignment_final=0.1)
    assert model.alignment_scale(None) == 1.0
    assert model.alignment_scale(0.0) == 0.0
    assert model.alignment_scale(0.1) == pytest.approx(0.5)
    assert model.alignment_scale(0.2) == pytest.approx(1.0)
    assert model.alignment_scale(0.6) == pytest.approx(0.55)
    assert model.alignment_scale(1.0) == pytest.approx(0.1)
    batch = collate([data("ethanol"), data("slab")], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
    torch.manual_seed(0)
    full = model.train().auxiliary_loss(batch, None)
    torch.manual_seed(0)
    assert float(model.auxiliary_loss(batch, 0.1)) == pytest.approx(0.5 * float(full), rel=1e-10)
    with pytest.raises(ValueError, match="alignment_warmup"):
        make("transip", alignment_warmup=1.0)


def test_pooled_structure_alignment_trains():
    """The paper's alignment: pooled structure embeddings contrasted across the batch's structures."""
    torch.manual_seed(0)
    model = make("transip", alignment="structure", position_encoding="rotary").train()
    batch = collate([data("ethanol"), data("triclinic"), data("slab"), data("si2")], cutoff=model.cutoff,
                    max_neighbors=model.max_neighbors)
    losses = train_alignment(model, batch, 40)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses

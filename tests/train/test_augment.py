"""Random-rotation augmentation: targets turn with the structure, draws are reproducible, and the
training loop applies it to every training batch (and to nothing else)."""

import torch

import mlip.train.augment as augment
from mlip.graph import collate
from mlip.train.loss import PotentialLoss
from mlip.train.run import compose, train
from tests.models.structures import data, make


def labelled(structure, model):
    d = data(structure)
    out = model(d)
    d.energy, d.forces, d.stress = out["energy"].detach(), out["forces"].detach(), out["stress"].detach()
    d.forces = d.forces + 0.1 * torch.randn_like(d.forces)  # targets the model does not reproduce exactly
    return d


def test_an_equivariant_model_sees_the_same_loss_on_a_rotated_batch():
    model = make("facet")
    batch = collate([labelled("triclinic", model), labelled("ethanol", model)], cutoff=model.cutoff)
    rotations = augment.step_rotations(2, seed=0, step=3)
    turned = augment.rotate(batch, rotations)
    assert not torch.allclose(turned.pos, batch.pos)
    loss = PotentialLoss(energy_weight=1.0, forces_weight=10.0, stress_weight=1.0)
    torch.testing.assert_close(loss(model(turned), turned)["loss"], loss(model(batch), batch)["loss"],
                               rtol=1e-9, atol=1e-12)
    # the stress target of structure 0 turned as R σ R^T
    r = rotations[0]
    torch.testing.assert_close(turned.stress[0], r @ batch.stress[0] @ r.T)


def test_rotations_are_reproducible_per_step_and_rank():
    a = augment.step_rotations(3, seed=1, step=5, rank=0)
    torch.testing.assert_close(a, augment.step_rotations(3, seed=1, step=5, rank=0))
    assert not torch.allclose(a, augment.step_rotations(3, seed=1, step=6, rank=0))
    assert not torch.allclose(a, augment.step_rotations(3, seed=1, step=5, rank=1))
    torch.testing.assert_close(a @ a.transpose(1, 2), torch.eye(3, dtype=a.dtype).expand(3, 3, 3))
    assert torch.allclose(torch.linalg.det(a), torch.ones(3, dtype=a.dtype))


def test_training_rotates_every_training_batch_only(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    calls = []
    original = augment.rotate
    monkeypatch.setattr(augment, "rotate", lambda batch, r: calls.append(int(batch.num_graphs)) or original(batch, r))
    overrides = ["experiment=quickstart", "data.train_size=16", "data.batch_size=4", "data.batch_atoms=null",
                 "data.val_fraction=0.01",
                 "data.test=null", "model.preset=small", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                 "trainer.num_sanity_val_steps=0", f"run_dir={tmp_path}"]
    train(compose(overrides + ["data.augment_rotations=true"]))
    assert calls == [4] * 8  # 2 epochs x 4 training batches; validation is never rotated
    calls.clear()
    train(compose(overrides + ["data.augment_rotations=false"]))
    assert calls == []

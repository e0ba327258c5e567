"""The last-layer uncertainty (mlip.nn.llpr, attached by mlip.uncertainty.attach_last_layer)."""

from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import mlip
from mlip.calculator import MLIPCalculator
from mlip.data import AtomicData
from mlip.graph import collate
from mlip.models import build, registered
from mlip.testing import randomized
from mlip.testing.structures import ethanol, rattled
from mlip.uncertainty import attach_last_layer


def ethanol_frames(model, n, seed, scale=0.05):
    """Rattled ethanol with the model's own forces and energies plus noise, as 'training data'."""
    frames = []
    for k in range(n):
        d = AtomicData.from_ase(rattled(ethanol(), seed + k, scale))
        out = model(d)
        d.energy = out["energy"].detach() + 0.01 * torch.randn(1, dtype=torch.float64)
        d.forces = out["forces"].detach() + 0.05 * torch.randn_like(out["forces"])
        frames.append(d)
    return frames


def loader(model, frames):
    return DataLoader(frames, batch_size=4, collate_fn=partial(collate, cutoff=model.cutoff))


@pytest.mark.parametrize("name", registered())
def test_uncertainty_grows_away_from_the_fitted_structures(name):
    """Ethanol squeezed to 0.7x against a rattled one: the force uncertainty grows by more than
    2.5x, the energy uncertainty by more than 3x (measured with the two-block small preset: force / energy ratios equiformer_v2
    2.8 / 9.4, escaip 16.2 / 19.4, escn 8.8 / 24.7, facet 3.5 / 13.6, transip 3.8 / 9.8;
    EquiformerV2's final layer norm bounds its last-layer features, hence its smaller force ratio)."""
    torch.manual_seed(0)
    model = randomized(build(name, preset="small"), seed=0)
    attach_last_layer(model, loader(model, ethanol_frames(model, 24, 0)), loader(model, ethanol_frames(model, 8, 100)))
    assert model.provides_uncertainty
    near = model(AtomicData.from_ase(rattled(ethanol(), 500, 0.05)))
    squeezed = ethanol()
    squeezed.positions *= 0.7
    far = model(AtomicData.from_ase(squeezed))
    assert near["forces_std"].shape == (9,) and near["energy_std"].shape == (1,)
    assert float(far["forces_std"].mean()) > 2.5 * float(near["forces_std"].mean())
    assert float(far["energy_std"]) > 3 * float(near["energy_std"])


def test_calibrated_on_validation_and_kept_by_the_model_file(tmp_path):
    torch.manual_seed(0)
    model = randomized(build("facet", preset="small"), seed=0)
    val = ethanol_frames(model, 8, 100)
    attach_last_layer(model, loader(model, ethanol_frames(model, 24, 0)), loader(model, val))
    std, error = [], []
    for batch in loader(model, val):
        out = model(batch)
        std.append(out["forces_std"].detach())
        error.append((out["forces"].detach() - batch.forces).norm(dim=-1))
    rms = lambda x: float(torch.cat(x).pow(2).mean().sqrt())
    assert rms(std) == pytest.approx(rms(error), rel=1e-6)
    model.save(tmp_path / "m.pt")
    loaded = mlip.load(tmp_path / "m.pt")
    d = AtomicData.from_ase(ethanol())
    torch.testing.assert_close(loaded(d)["forces_std"], model(d)["forces_std"])
    atoms = ethanol()
    atoms.calc = MLIPCalculator(loaded)
    atoms.get_forces()
    np.testing.assert_allclose(atoms.calc.results["forces_std"], model(d)["forces_std"].detach().numpy(), rtol=1e-10)
    # training mode (and the exported compute path) carry no uncertainty
    assert "forces_std" not in loaded.train()(d)

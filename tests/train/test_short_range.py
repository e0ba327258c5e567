"""Trained models stay repulsive where the training data is silent: every architecture trained on rMD17
ethanol (the quickstart experiment, one epoch here; the full 10-minute quickstart in the long test)
has dimers H-H, C-H, O-H, C-C, C-O, O-O whose energy rises monotonically from 0.95 x the pair's
shortest training distance (the covalent rule's window top for O-O, absent from ethanol) down to
0.3 Å in steps of 0.01 Å, and ethanol relaxed with the model and squeezed uniformly to 70% of its
volume rises in energy."""

import copy

import numpy as np
import pytest
from ase.build import molecule
from ase.data import chemical_symbols

import mlip
from mlip.models import registered
from mlip.train.run import compose, train
from mlip.verify import dimer_curves, relaxed, squeeze_energies

# one epoch (not a time budget: the same model on a loaded machine or a fast one)
SHORT = ["experiment=quickstart", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "data.test=null",
         "last_layer_uncertainty=false"]


def check_trained(model) -> None:
    model = copy.deepcopy(model).double()  # steps of 0.01 Å near a minimum are below float32's resolution
    table = model.repulsion.pair_min_distance
    assert float(table[1, 1]) > 0 and float(table[1, 6]) > 0 and float(table[6, 8]) > 0
    assert float(table[8, 8]) == 0.0  # no O-O pair within the cutoff in ethanol
    for (a, b), (distances, energies) in dimer_curves(model, [1, 6, 8], step=0.01).items():
        rising = np.diff(energies) < 0
        name = f"{chemical_symbols[a]}-{chemical_symbols[b]}"
        assert rising.all(), f"{name}: not monotonic at {distances[1:][~rising].round(2)} Å (top {distances[-1]:.3f})"
    fractions, energies = squeeze_energies(model, relaxed(model, molecule("CH3CH2OH")))  # the model's own ethanol
    assert (np.diff(energies) > 0).all(), f"squeezed ethanol falls at {fractions[1:][np.diff(energies) <= 0]}"


@pytest.mark.xdist_group("short-range-trained")
@pytest.mark.parametrize("name", registered())
def test_a_briefly_trained_model_is_repulsive_below_its_data(tmp_path, data_dir, monkeypatch, name):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    summary = train(compose(SHORT + [f"model={name}", f"run_dir={tmp_path}"]))
    check_trained(mlip.load(summary["best"]))


@pytest.mark.long
def test_the_quickstart_model_is_repulsive_below_its_data(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLIP_DATA", str(data_dir))
    summary = train(compose(["experiment=quickstart", f"run_dir={tmp_path}"]))
    check_trained(mlip.load(summary["best"]))

"""The model file (mlip.models.file): files written before a format change load unchanged."""

import json
from pathlib import Path

import torch

import mlip
from mlip.models import build
from mlip.testing import randomized
from mlip.testing.structures import data

HERE = Path(__file__).parent / "data"


def test_a_version_1_file_gives_the_energies_it_gave_when_written():
    """facet_small_v1.pt was written by mlip 0872fb4, before lone-atom references and the repulsion
    prior; facet_small_v1.json holds what that code computed with it."""
    written = json.loads((HERE / "facet_small_v1.json").read_text())
    model = mlip.load(HERE / "facet_small_v1.pt")
    assert model.repulsion is None and not bool(model.lone_reference)
    for name, expected in written["outputs"].items():
        out = model(data(name))
        for key, value in expected.items():
            torch.testing.assert_close(out[key].detach(), torch.tensor(value, dtype=torch.float64), rtol=1e-10,
                                       atol=1e-10)


def test_a_new_file_keeps_its_prior_and_lone_atom_references(tmp_path):
    for repulsion in ("zbl", None):
        model = randomized(build("facet", preset="small", repulsion=repulsion), seed=1)
        model.save(tmp_path / "m.pt")
        loaded = mlip.load(tmp_path / "m.pt")
        assert (loaded.repulsion is None) == (repulsion is None)
        assert bool(loaded.lone_reference)
        torch.testing.assert_close(loaded(data("ethanol"))["energy"], model(data("ethanol"))["energy"])


def test_a_version_2_file_gives_the_energies_it_gave_when_written():
    """facet_small_v2.pt was written before the prior was placed by the training data's shortest
    distances: it loads with the covalent rule and without freezing the learned part, and gives what
    the code of its version computed (facet_small_v2.json), a squeezed ethanol included, where the
    freezing would change the energy."""
    written = json.loads((HERE / "facet_small_v2.json").read_text())
    model = mlip.load(HERE / "facet_small_v2.pt")
    assert model.repulsion is not None and not bool(model.repulsion.freeze_learned)
    assert float(model.repulsion.pair_min_distance.abs().max()) == 0.0
    for name, expected in written["outputs"].items():
        d = data(name.split("_squeezed")[0])
        if "_squeezed" in name:
            d.pos = d.pos * 0.6
        out = model(d)
        for key, value in expected.items():
            torch.testing.assert_close(out[key].detach(), torch.tensor(value, dtype=torch.float64), rtol=1e-10,
                                       atol=1e-10)
    model.repulsion.freeze_learned.fill_(True)  # what a new file of the same weights gives there
    squeezed = data("ethanol")
    squeezed.pos = squeezed.pos * 0.6
    new = float(model(squeezed)["energy"].detach())
    assert abs(new - written["outputs"]["ethanol_squeezed_0.6"]["energy"][0]) > 1e-3


def test_a_new_file_keeps_its_training_distances(tmp_path):
    model = randomized(build("facet", preset="small"), seed=1)
    model.set_pair_min_distance([(1, 6, 1.02), (6, 8, 1.31)])
    model.save(tmp_path / "m.pt")
    loaded = mlip.load(tmp_path / "m.pt")
    assert bool(loaded.repulsion.freeze_learned)
    torch.testing.assert_close(loaded.repulsion.pair_min_distance, model.repulsion.pair_min_distance)
    assert float(loaded.repulsion.pair_min_distance[6, 1]) == 1.02

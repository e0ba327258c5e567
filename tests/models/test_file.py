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

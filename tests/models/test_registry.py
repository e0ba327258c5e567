import pytest
import torch

import mlip
from mlip.models import build, registered
from tests.models.structures import data, make


def test_registry_and_presets():
    assert "facet" in registered()
    with pytest.raises(ValueError, match="unknown potential 'nope'"):
        build("nope")
    with pytest.raises(ValueError, match="no preset 'huge'"):
        build("facet", preset="huge")
    model = build("facet", preset="small", channels=8, radial_heads=2)
    assert model.hyperparameters["channels"] == 8 and model.hyperparameters["cutoff"] == 4.0


def test_mp_preset_is_sevennet_sized():
    n = sum(p.numel() for p in build("facet", preset="mp").parameters())
    assert 600_000 <= n <= 850_000
    assert build("facet", preset="mp").cutoff == 5.0


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = make("facet", species=[1, 6, 8])
    model.set_statistics({1: -13.6, 6: -1029.5, 8: -2041.8}, scale=2.0, shift=0.1)
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = mlip.load(path)
    assert loaded.dtype == torch.float64 and not loaded.training
    d = data("ethanol")
    a, b = model.eval()(d), loaded(d)
    torch.testing.assert_close(a["energy"], b["energy"], rtol=0, atol=0)
    torch.testing.assert_close(a["forces"], b["forces"], rtol=0, atol=0)


def test_unknown_element_is_named():
    model = build("facet", preset="small", species=[1, 6, 8])
    with pytest.raises(ValueError, match=r"not trained on Si \(Z=14\)"):
        model(data("si2"))


def test_charge_and_spin_change_the_energy():
    torch.manual_seed(0)
    model = make("facet", charge_spin=True)
    d = data("ethanol")
    e0 = model(d)["energy"]
    d.charge = torch.tensor([1])
    e1 = model(d)["energy"]
    d.spin = torch.tensor([2])
    e2 = model(d)["energy"]
    assert len({float(e0), float(e1), float(e2)}) == 3
    d.spin = torch.tensor([0])
    with pytest.raises(ValueError, match="multiplicity"):
        model(d)

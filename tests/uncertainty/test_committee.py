"""Committees (mlip.uncertainty.committee): the mean and spread of their members, in one call."""

import numpy as np
import pytest
import torch

import mlip
from mlip.calculator import MLIPCalculator
from mlip.models import build
from mlip.testing import randomized
from mlip.testing.structures import STRUCTURES, data
from mlip.uncertainty import Committee


@pytest.fixture
def members():
    return [randomized(build("facet", preset="small"), seed=k) for k in range(3)]


def test_mean_and_spread_of_the_members(members):
    committee = Committee(members, calibration=2.0)
    d = data("triclinic")
    out = committee(d)
    each = [m(d) for m in members]
    forces = torch.stack([o["forces"] for o in each])
    torch.testing.assert_close(out["energy"], torch.stack([o["energy"] for o in each]).mean(0))
    torch.testing.assert_close(out["forces"], forces.mean(0))
    # per atom: the norm of the per-component sample std, times the calibration
    expected = 2.0 * forces.std(0, correction=1).pow(2).sum(-1).sqrt()
    torch.testing.assert_close(out["forces_std"], expected)
    assert out["forces_std"].shape == (d.pos.shape[0],) and float(out["forces_std"].min()) > 0
    torch.testing.assert_close(out["stress_std"], 2.0 * torch.stack([o["stress"] for o in each]).std(0))


def test_identical_members_have_no_spread(members):
    out = Committee([members[0], members[0]])(data("ethanol"))
    assert float(out["forces_std"].abs().max()) == 0.0 and float(out["energy_std"].abs().max()) == 0.0


def test_file_and_list_loading_and_calculator(members, tmp_path):
    committee = Committee(members, calibration=1.5)
    committee.save(tmp_path / "committee.pt")
    for i, m in enumerate(members):
        m.save(tmp_path / f"m{i}.pt")
    from_file = mlip.load(tmp_path / "committee.pt")
    from_list = mlip.load([tmp_path / f"m{i}.pt" for i in range(3)])
    ref = committee(data("ethanol"))
    torch.testing.assert_close(from_file(data("ethanol"))["forces_std"], ref["forces_std"])
    torch.testing.assert_close(from_list(data("ethanol"))["forces_std"], ref["forces_std"] / 1.5)
    atoms = STRUCTURES["ethanol"]()
    atoms.calc = MLIPCalculator(tmp_path / "committee.pt")
    assert atoms.get_potential_energy() == pytest.approx(float(ref["energy"]), rel=1e-10)
    np.testing.assert_allclose(atoms.calc.results["forces_std"], ref["forces_std"].detach().numpy(), rtol=1e-10)
    assert atoms.calc.get_property("energy_std") == pytest.approx(float(ref["energy_std"]), rel=1e-10)


def test_members_must_share_the_graph(members):
    with pytest.raises(ValueError, match="share cutoff"):
        Committee([members[0], randomized(build("facet", preset="small", cutoff=3.0), seed=5)])
    with pytest.raises(ValueError, match="at least 2"):
        Committee(members[:1])


def test_a_single_model_has_no_uncertainty_properties(members):
    calc = MLIPCalculator(members[0])
    assert "forces_std" not in calc.implemented_properties

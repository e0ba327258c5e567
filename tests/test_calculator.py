import numpy as np
import pytest
from ase.build import bulk
from ase.optimize import BFGS

from mlip.calculator import MLIPCalculator
from tests.models.structures import ethanol, make


@pytest.fixture
def model():
    return make("facet", charge_spin=True, species=[1, 6, 8, 14])


def test_recomputes_on_charge_and_spin_changes(model):
    atoms = ethanol()
    atoms.calc = MLIPCalculator(model)
    e0 = atoms.get_potential_energy()
    assert atoms.get_potential_energy() == e0  # cached
    atoms.info["charge"] = 1
    e1 = atoms.get_potential_energy()
    assert e1 != e0
    atoms.info["charge"] = 0
    assert atoms.get_potential_energy() == pytest.approx(e0, rel=1e-14)
    atoms.positions[0, 0] += 0.01
    assert atoms.get_potential_energy() != e0
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()


def test_loads_from_path_and_names_unknown_elements(model, tmp_path):
    path = tmp_path / "m.pt"
    model.save(path)
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = MLIPCalculator(str(path))
    with pytest.raises(ValueError, match=r"Cu \(Z=29\)"):
        atoms.get_potential_energy()


def test_drives_an_ase_optimiser(model):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=0)
    atoms.calc = MLIPCalculator(model)
    f0 = np.abs(atoms.get_forces()).max()
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=30)
    assert np.abs(atoms.get_forces()).max() < f0
    assert atoms.get_stress().shape == (6,)

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from torch_geometric.data import Batch

from mlip.data import AtomicData, DataError


def test_ase_round_trip_keeps_targets_charge_spin():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.info.update(charge=-1, spin=2)
    from ase.calculators.singlepoint import SinglePointCalculator

    stress = np.array([0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    atoms.calc = SinglePointCalculator(atoms, energy=-14.0, forces=np.ones((4, 3)), stress=stress)
    data = AtomicData.from_ase(atoms)
    assert data.charge.item() == -1 and data.spin.item() == 2
    assert data.stress[0, 1, 2].item() == 0.01 and data.stress[0, 0, 1].item() == 0.03
    back = data.to_ase()
    np.testing.assert_allclose(back.get_stress(), stress)
    assert back.get_potential_energy() == -14.0 and back.info["charge"] == -1


def test_non_integer_charge_is_an_error():
    atoms = molecule("H2O")
    atoms.info["charge"] = 0.5
    with pytest.raises(DataError, match="key 'charge': must be an integer"):
        AtomicData.from_ase(atoms, source="w.xyz", frame=3)


def test_batching_offsets_only_edge_index():
    a = AtomicData.from_ase(molecule("H2O"), idx=4)
    b = AtomicData.from_ase(molecule("CH4"), idx=9)
    a.edge_index = torch.tensor([[0, 1], [1, 0]])
    b.edge_index = torch.tensor([[0, 2], [2, 0]])
    a.cell_shifts = torch.zeros(2, 3, dtype=torch.long)
    b.cell_shifts = torch.zeros(2, 3, dtype=torch.long)
    batch = Batch.from_data_list([a, b])
    assert batch.edge_index.tolist() == [[0, 1, 3, 5], [1, 0, 5, 3]]
    assert batch.idx.tolist() == [4, 9]
    assert batch.cell.shape == (2, 3, 3) and batch.pbc.shape == (2, 3)
    assert batch.natoms.tolist() == [3, 5]


def test_stress_shapes():
    from mlip.data.atomic_data import stress_to_3x3

    np.testing.assert_array_equal(stress_to_3x3(np.arange(9)), np.arange(9).reshape(3, 3))
    with pytest.raises(DataError, match="stress"):
        stress_to_3x3(np.arange(4))

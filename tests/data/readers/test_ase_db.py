"""OMol25 as it ships (ASE-LMDB), and ASE databases in general."""

import shutil

import ase.db
import numpy as np
import pytest

from mlip.data import DataError, open_dataset
from mlip.data.readers import ASEDatabaseDataset, ExtXYZDataset


@pytest.fixture
def omol(data_dir):
    return data_dir / "omol25" / "omol25_noble_gas_DERIVED.aselmdb"


def test_omol25_charge_spin_energy(omol, data_dir):
    ds = open_dataset(omol)
    assert isinstance(ds, ASEDatabaseDataset) and len(ds) == 18
    xyz = ExtXYZDataset(data_dir / "omol25" / "structs_noble_gas_compounds.xyz")
    reference = [a for a in (xyz.read_atoms(i) for i in range(len(xyz)))]
    charges = []
    for frame, atoms in zip(ds, reference):
        assert frame.charge.item() == atoms.info["total_charge_e"]
        assert frame.spin.item() == atoms.info["multiplicity"]
        assert frame.energy.item() == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(frame.forces, atoms.get_forces(), atol=1e-8)
        charges.append(frame.charge.item())
    assert set(charges) == {-1, 0, 1}  # the sample has cations, anions and neutrals
    assert ds[0].charge.item() == 1  # HCNKrF+


def test_omol25_directory(omol, tmp_path):
    for k in range(2):
        shutil.copy(omol, tmp_path / f"shard{k}.aselmdb")
    ds = open_dataset(tmp_path)
    assert ds.format_name == "omol25" or ds.format_name == "ase_db"
    assert len(ds) == 36
    assert ds[20].charge.item() == ds.datasets[1][2].charge.item()


def test_sqlite_and_json_databases(tmp_path, data_dir):
    src = open_dataset(data_dir / "oc20" / "fairchem_tests_atoms.json")
    assert len(src) == 1 and src[0].fixed.sum() == 24
    db = ase.db.connect(tmp_path / "x.db")
    for data in open_dataset(data_dir / "extxyz" / "sevennet_hfo2.extxyz"):
        db.write(data.to_ase(), data={"charge": 0, "spin": 1})
    ds = open_dataset(tmp_path / "x.db")
    assert len(ds) == 2
    assert ds[1].stress.shape == (1, 3, 3) and ds[1].pbc.all()


def test_corrupt_database(tmp_path):
    bad = tmp_path / "bad.aselmdb"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DataError, match="bad.aselmdb"):
        open_dataset(bad)

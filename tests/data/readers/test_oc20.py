"""OC20 S2EF. No real S2EF LMDB small enough to ship exists publicly, so the LMDB and raw files
here are built in the real layouts from a real OC20-style slab (fairchem's test frame)."""

import lzma
import pickle

import ase.db
import ase.io
import lmdb
import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from mlip.data import AtomicData, DataError, open_dataset
from mlip.data.readers import OC20ExtXYZDataset, OC20LMDBDataset, write_oc20_lmdb


@pytest.fixture
def slab(data_dir):
    row = next(ase.db.connect(data_dir / "oc20" / "fairchem_tests_atoms.json").select())
    return row.toatoms()


def frames(slab, n=3):
    out = []
    rng = np.random.default_rng(0)
    for k in range(n):
        atoms = slab.copy()
        atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape) * ~np.isin(
            np.arange(len(atoms)), atoms.constraints[0].get_indices())[:, None]
        forces = slab.get_forces(apply_constraint=False) + 0.01 * k
        atoms.calc = SinglePointCalculator(atoms, energy=slab.get_potential_energy() + 0.1 * k, forces=forces)
        out.append(atoms)
    return out


@pytest.mark.parametrize("old_names", [True, False])
def test_s2ef_lmdb_round_trip(tmp_path, slab, old_names):
    records = [AtomicData.from_ase(a) for a in frames(slab)]
    path = tmp_path / "data.0000.lmdb"
    write_oc20_lmdb(path, records, old_names=old_names)
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:  # the real layout
        assert pickle.loads(txn.get(b"length")) == 3
        stored = pickle.loads(txn.get(b"1"))
    env.close()
    assert hasattr(stored, "y" if old_names else "energy") and hasattr(stored, "force" if old_names else "forces")
    ds = open_dataset(path)
    assert isinstance(ds, OC20LMDBDataset) and len(ds) == 3
    got = ds[1]
    assert got.energy.item() == pytest.approx(-135.66393572 + 0.1, abs=1e-4)
    np.testing.assert_allclose(got.forces, records[1].forces, atol=1e-5)
    assert got.tags.tolist() == slab.get_tags().tolist()
    assert got.fixed.sum().item() == 24 and got.fixed[2] and not got.fixed[0]
    assert got.pbc.all() and got.name == "1/0"


def test_directory_of_lmdbs(tmp_path, slab):
    records = [AtomicData.from_ase(a) for a in frames(slab, 4)]
    write_oc20_lmdb(tmp_path / "data.0000.lmdb", records[:3])
    write_oc20_lmdb(tmp_path / "data.0001.lmdb", records[3:])
    ds = open_dataset(tmp_path)
    assert len(ds) == 4 and ds.format_name == "oc20_lmdb"
    assert ds[3].energy.item() == pytest.approx(records[3].energy.item(), abs=1e-4)
    assert int(ds[3].idx) == 3


def test_lmdb_with_pickled_dicts_and_corrupt_entry(tmp_path, slab):
    path = tmp_path / "dicts.lmdb"
    env = lmdb.open(str(path), subdir=False, map_size=1 << 26)
    rec = AtomicData.from_ase(frames(slab, 1)[0])
    with env.begin(write=True) as txn:
        txn.put(b"0", pickle.dumps({"pos": rec.pos, "atomic_numbers": rec.atomic_numbers, "cell": rec.cell,
                                    "y": 1.5, "force": rec.forces}))
        txn.put(b"1", b"not a pickle")
        txn.put(b"length", pickle.dumps(2))
    env.close()
    ds = OC20LMDBDataset(path)
    assert ds[0].energy.item() == 1.5
    with pytest.raises(DataError, match=r"dicts.lmdb, frame 1: cannot read"):
        ds[1]


@pytest.mark.parametrize("compress", [False, True])
def test_raw_extxyz_and_txt(tmp_path, slab, compress):
    atoms = frames(slab)
    xyz, txt = tmp_path / "1234.extxyz", tmp_path / "1234.txt"
    ase.io.write(xyz, atoms, format="extxyz")
    lines = "".join(f"random1234,frame{k},{-100.0 - k}\n" for k in range(len(atoms)))
    txt.write_text(lines)
    if compress:
        for p in (xyz, txt):
            p.with_name(p.name + ".xz").write_bytes(lzma.compress(p.read_bytes()))
            p.unlink()
        xyz = xyz.with_name(xyz.name + ".xz")
    ds = open_dataset(xyz)
    assert isinstance(ds, OC20ExtXYZDataset) and len(ds) == 3
    got = ds[2]
    # S2EF target: DFT energy minus the reference energy of the txt line
    assert got.energy.item() == pytest.approx(-135.66393572 + 0.2 - (-102.0), abs=1e-6)
    assert got.name == "1234/2"
    assert got.tags.tolist() == slab.get_tags().tolist()
    assert got.fixed.sum().item() == 24
    raw = OC20ExtXYZDataset(xyz, subtract_reference=False)[2]
    assert raw.energy.item() == pytest.approx(-135.66393572 + 0.2, abs=1e-6)
    assert len(open_dataset(tmp_path, format="oc20_extxyz")) == 3


def test_raw_txt_line_count_mismatch(tmp_path, slab):
    ase.io.write(tmp_path / "9.extxyz", frames(slab), format="extxyz")
    (tmp_path / "9.txt").write_text("random9,frame0,-1.0\n")
    with pytest.raises(DataError, match=r"9.txt.*1 lines but .*3 frames"):
        OC20ExtXYZDataset(tmp_path / "9.extxyz")


def test_fixed_and_tags_survive_to_ase(slab):
    data = AtomicData.from_ase(slab)
    back = data.to_ase()
    assert back.constraints[0].get_indices().tolist() == slab.constraints[0].get_indices().tolist()
    assert back.get_tags().tolist() == slab.get_tags().tolist()
    assert torch.equal(AtomicData.from_ase(back).fixed, data.fixed)

import json
import os

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
import ase.io

from mlip.data import DataError, PreparedDataset, compute_statistics, open_dataset, write_prepared
from mlip.graph.neighbors import neighbor_list_numpy

FIELDS = ("pos", "atomic_numbers", "cell", "pbc", "energy", "forces", "stress", "charge", "spin", "magmom")


def assert_same(a, b):
    for key in FIELDS:
        assert (key in a) == (key in b), key
        if key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, check_dtype=False)
    assert a.name == b.name


@pytest.mark.parametrize("rel", ["mptrj/MPtrj_sample_DERIVED_from_ffast.json", "omol25/omol25_noble_gas_DERIVED.aselmdb",
                                 "oc20/fairchem_tests_atoms.json", "extxyz/sevennet_hfo2.extxyz"])
def test_prepared_equals_source(tmp_path, data_dir, rel):
    src = open_dataset(data_dir / rel)
    meta = write_prepared(src, tmp_path / "out", cutoff=5.0, progress=False)
    prepared = open_dataset(tmp_path / "out")
    assert isinstance(prepared, PreparedDataset) and len(prepared) == len(src) == meta["n_structures"]
    for i in range(len(src)):
        assert_same(src[i], prepared[i])
    if "fixed" in src[0]:
        assert torch.equal(src[0].fixed, prepared[0].fixed) and torch.equal(src[0].tags, prepared[0].tags)
    assert not any(p.name.endswith(".tmp") or ".tmp-" in p.name for p in tmp_path.iterdir())


def test_statistics_recover_linear_reference_energies(tmp_path):
    rng = np.random.default_rng(1)
    truth = {1: -13.6, 6: -1029.5, 8: -2041.8}
    frames = []
    for k in range(40):
        symbols = rng.choice(["H", "C", "O"], size=rng.integers(3, 9))
        atoms = Atoms(symbols=list(symbols), positions=rng.normal(size=(len(symbols), 3)) * 3)
        energy = sum(truth[z] for z in atoms.numbers)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=rng.normal(size=(len(atoms), 3)))
        frames.append(atoms)
    ase.io.write(tmp_path / "lin.extxyz", frames)
    ds = open_dataset(tmp_path / "lin.extxyz", min_distance=0.0)
    stats = compute_statistics(ds, cutoff=4.0)
    for z, e in truth.items():
        assert stats["reference_energies"][z] == pytest.approx(e, abs=1e-6)
    assert stats["energy_residual_rms"] == pytest.approx(0.0, abs=1e-5)
    forces = np.concatenate([a.get_forces() for a in frames])
    assert stats["force_rms"] == pytest.approx(np.sqrt(np.mean(forces ** 2)))
    edges = sum(len(neighbor_list_numpy(a.positions, np.zeros((3, 3)), [False] * 3, 4.0)[0]) for a in frames)
    assert stats["avg_num_neighbors"] == pytest.approx(edges / sum(len(a) for a in frames))
    assert stats["elements"] == [1, 6, 8]
    # only the split asked for counts
    assert compute_statistics(ds, cutoff=None, indices=[0, 1])["n_structures"] == 2


def test_prepare_refuses_to_overwrite_and_detects_truncation(tmp_path, data_dir):
    src = open_dataset(data_dir / "extxyz" / "sevennet_hfo2.extxyz")
    out = tmp_path / "p"
    write_prepared(src, out, progress=False)
    with pytest.raises(FileExistsError):
        write_prepared(src, out, progress=False)
    meta = write_prepared(src, out, progress=False, overwrite=True)
    assert json.load(open(out / "metadata.json"))["n_structures"] == meta["n_structures"] == 2
    with open(out / "forces.bin", "r+b") as f:
        f.truncate(os.path.getsize(out / "forces.bin") - 8)
    with pytest.raises(DataError, match=r"forces.bin.*truncated"):
        open_dataset(out)[0]


def test_interrupted_prepare_leaves_nothing(tmp_path, data_dir):
    src = open_dataset(data_dir / "extxyz" / "sevennet_hfo2.extxyz")

    class Exploding:
        path = src.path

        def __len__(self):
            return 2

        def __iter__(self):
            yield src[0]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_prepared(Exploding(), tmp_path / "never", progress=False)
    assert list(tmp_path.iterdir()) == []

"""Every reader's open of a truncated, empty or corrupt file raises DataError naming the file,
whatever the format's own library says (zipfile's "File is not a zip file", lmdb's, ase's, ...)."""

import shutil

import numpy as np
import pytest

from mlip.data import DataError, open_dataset

SAMPLES = ["rmd17/rmd17_ethanol_test_01.npz", "md17/ethanol_ccsd_t-train.npz", "mptrj/MPtrj_sample_DERIVED_from_ffast.json",
           "mptrj/mptrj_ffast_first10.extxyz", "extxyz/3bpa_iso_atoms.xyz", "oc20/fairchem_tests_atoms.json",
           "omol25/omol25_noble_gas_DERIVED.aselmdb"]


def damaged(source, target, how: str):
    raw = source.read_bytes()
    if how == "empty":
        target.write_bytes(b"")
    elif how == "truncated":
        target.write_bytes(raw[: len(raw) // 3])
    else:  # corrupt: the same size, bytes scrambled after a short intact head
        rng = np.random.default_rng(0)
        target.write_bytes(raw[:16] + rng.integers(0, 256, len(raw) - 16, dtype=np.uint8).tobytes())
    return target


def read_everything(path):
    dataset = open_dataset(path)
    for i in range(len(dataset)):
        dataset[i]
    return dataset


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_a_damaged_file_raises_data_error_naming_it(data_dir, tmp_path, sample, how):
    source = data_dir / sample
    path = damaged(source, tmp_path / f"{how}_{source.name}", how)
    with pytest.raises(DataError) as caught:
        read_everything(path)
    assert str(path) in str(caught.value), caught.value


@pytest.mark.parametrize("how", ["empty", "truncated", "corrupt"])
def test_a_damaged_oc20_lmdb_raises_data_error_naming_it(data_dir, tmp_path, how):
    """An LMDB file cut short would be mapped past its end (SIGBUS, the process dies): its header is
    checked first."""
    import ase.db

    from mlip.data import AtomicData
    from mlip.data.readers import write_oc20_lmdb

    atoms = next(ase.db.connect(data_dir / "oc20" / "fairchem_tests_atoms.json").select()).toatoms()
    source = tmp_path / "data.0000.lmdb"
    write_oc20_lmdb(source, [AtomicData.from_ase(atoms)] * 40)
    assert len(read_everything(source)) == 40
    path = damaged(source, tmp_path / f"{how}.lmdb", how)
    with pytest.raises(DataError) as caught:
        read_everything(path)
    assert str(path) in str(caught.value), caught.value


def test_the_intact_copies_read(data_dir, tmp_path):
    for sample in SAMPLES:
        copy = tmp_path / (data_dir / sample).name
        shutil.copy(data_dir / sample, copy)
        assert len(read_everything(copy)) > 0

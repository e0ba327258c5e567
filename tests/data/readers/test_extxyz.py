import numpy as np
import pytest

from mlip.data import DataError, open_dataset
from mlip.data.readers import ExtXYZDataset


def test_periodic_frames_with_stress(data_dir):
    ds = open_dataset(data_dir / "extxyz" / "sevennet_hfo2.extxyz")
    assert len(ds) == 2
    frame = ds[0]
    assert frame.pbc.all() and frame.natoms.item() == 12
    assert frame.stress[0, 0, 0].item() == pytest.approx(-0.04641964502194789)
    assert frame.stress[0, 1, 2].item() == pytest.approx(0.0027361028385316957)
    np.testing.assert_allclose(frame.stress[0], frame.stress[0].T)


def test_molecules_and_keys(data_dir):
    ds = open_dataset(data_dir / "extxyz" / "3bpa_train_300K.xyz")
    assert len(ds) == 500 and ds[499].natoms.item() == 27
    assert ds[-1].energy.item() == ds[499].energy.item()
    assert ds[0].energy.item() == pytest.approx(-17660.461737861464)
    with pytest.raises(DataError, match="key 'REF_energy'"):
        ExtXYZDataset(data_dir / "extxyz" / "3bpa_train_300K.xyz", energy_key="REF_energy")[0]


def test_mptrj_converter_extxyz(data_dir):
    ds = open_dataset(data_dir / "mptrj" / "mp-149_nequix.extxyz")
    assert len(ds) == 7 and set(ds[0].atomic_numbers.tolist()) == {14}
    assert ds[0].stress[0, 0, 0].item() == pytest.approx(8.083068265927851e-05)


def test_truncated_file(tmp_path, data_dir):
    text = (data_dir / "extxyz" / "sevennet_hfo2.extxyz").read_text().splitlines(keepends=True)
    path = tmp_path / "cut.extxyz"
    path.write_text("".join(text[:-3]))
    with pytest.raises(DataError, match=r"cut.extxyz, frame 1: file ends .*truncated"):
        ExtXYZDataset(path)


def test_bad_count_line(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("1\nProperties=species:S:1:pos:R:3\nH 0 0 0\nabc\n")
    with pytest.raises(DataError, match=r"bad.xyz, frame 1: line 4"):
        ExtXYZDataset(path)

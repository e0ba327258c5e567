import numpy as np
import pytest

from mlip.data import DataError, open_dataset, read_indices
from mlip.data.readers import MD17Dataset

# 1 kcal/mol in eV, by hand: 4184 J/mol / (N_A e), with the CODATA 2014 constants that ASE's units
# use (and with them the MD17/MPtrj converters of the field)
KCAL_MOL_IN_EV = 4184.0 / (6.022140857e23 * 1.6021766208e-19)


def test_rmd17_energy_and_forces_in_ev(data_dir):
    path = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    raw = np.load(path)
    ds = open_dataset(path)
    assert isinstance(ds, MD17Dataset) and ds.layout == "revised"
    assert len(ds) == 1000
    frame = ds[7]
    assert frame.energy.item() == pytest.approx(raw["energies"][7] * KCAL_MOL_IN_EV, rel=1e-9)
    # ethanol's PBE energy is about -97,000 kcal/mol = about -4,200 eV
    assert -4300 < frame.energy.item() < -4100
    np.testing.assert_allclose(frame.forces.numpy(), raw["forces"][7] * KCAL_MOL_IN_EV, rtol=1e-12)
    np.testing.assert_array_equal(frame.atomic_numbers.numpy(), raw["nuclear_charges"])
    np.testing.assert_array_equal(frame.pos.numpy(), raw["coords"][7])
    assert not frame.pbc.any() and frame.charge.item() == 0 and frame.spin.item() == 1


def test_original_md17_layout(data_dir):
    path = data_dir / "md17" / "ethanol_ccsd_t-train.npz"
    raw = np.load(path)
    ds = open_dataset(path)
    assert ds.layout == "original" and len(ds) == raw["R"].shape[0]
    assert raw["E"].shape[1] == 1
    assert ds[3].energy.item() == pytest.approx(raw["E"][3, 0] * KCAL_MOL_IN_EV, rel=1e-9)


def test_split_files_csv_and_npz(data_dir, tmp_path):
    path = data_dir / "rmd17" / "rmd17_ethanol_train_01.npz"
    csv = tmp_path / "index_train_01.csv"
    csv.write_text("5\n2\n\n9\n")
    ds = open_dataset(path, indices=csv)
    assert len(ds) == 3
    assert [int(d.idx) for d in ds] == [5, 2, 9]
    split = data_dir / "rmd17" / "schnetpack_rmd17_ethanol_split.npz"
    train = read_indices(split, "train")
    assert len(train) == 900 and train.dtype == np.int64
    with pytest.raises(DataError, match="split="):
        read_indices(split)
    # these indices address the 100k-frame rMD17 file, not the 1000-frame train_01 file
    with pytest.raises(DataError, match="out of range"):
        open_dataset(path, indices=split, split="test")


def test_bad_index_file_names_line(tmp_path, data_dir):
    bad = tmp_path / "idx.csv"
    bad.write_text("1\n2\nthree\n")
    with pytest.raises(DataError, match=r"idx.csv.*line 3"):
        read_indices(bad)


def test_missing_key_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, nuclear_charges=np.array([1, 1]), coords=np.zeros((2, 2, 3)), energies=np.zeros(2))
    with pytest.raises(DataError, match=r"broken.npz.*key 'forces'"):
        MD17Dataset(path)


def test_shape_mismatch_is_named(tmp_path):
    path = tmp_path / "shape.npz"
    np.savez(path, nuclear_charges=np.array([1, 8]), coords=np.array([[[0, 0, 0], [0, 0, 1.0]]]),
             energies=np.zeros(1), forces=np.zeros((1, 3, 3)))
    with pytest.raises(DataError, match=r"shape.npz, frame 0, key 'forces'"):
        open_dataset(path)[0]

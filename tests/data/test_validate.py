"""Bad input: every error names the file, the frame and the key; skipping is explicit and reported."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
import ase.io

from mlip.data import AtomicData, DataError, open_dataset, validate


def write_frames(path, frames):
    out = []
    for atoms, energy, forces in frames:
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    ase.io.write(path, out, format="extxyz")
    return path


def water(shift=0.0):
    return Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.0 + shift]])


def good(k=0):
    return water(0.01 * k), -10.0 - k, np.zeros((3, 3))


@pytest.mark.parametrize("name, bad, key, message", [
    ("nan", (water(), -10.0, np.array([[0, 0, 0], [np.nan, 0, 0], [0, 0, 0]])), "forces", "NaN"),
    ("inf", (water(), np.inf, np.zeros((3, 3))), "energy", "inf"),
    ("unknown", (Atoms("OHX", positions=water().positions), -10.0, np.zeros((3, 3))), "atomic_numbers",
     "unknown element Z=0 at atom 2"),
    ("close", (Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [0.96, 0.05, 0]]), -10.0, np.zeros((3, 3))),
     "pos", "closer than 0.1"),
])
def test_bad_frame_is_named(tmp_path, name, bad, key, message):
    path = write_frames(tmp_path / f"{name}.extxyz", [good(0), good(1), bad, good(3)])
    ds = open_dataset(path)
    ds[1]
    with pytest.raises(DataError, match=rf"{name}.extxyz, frame 2, key '{key}': .*{message}") as err:
        ds[2]
    assert err.value.frame == 2 and err.value.key == key and err.value.source.endswith(f"{name}.extxyz")


def test_singular_cell_with_pbc(tmp_path):
    atoms = Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=[[5, 0, 0], [5, 0, 0], [0, 0, 5]], pbc=True)
    path = write_frames(tmp_path / "cell.extxyz", [(atoms, -1.0, np.zeros((2, 3)))])
    with pytest.raises(DataError, match=r"cell.extxyz, frame 0, key 'cell': .*singular"):
        open_dataset(path)[0]


def test_close_periodic_image(tmp_path):
    # one atom in a 0.05 Å cell sits next to its own image
    atoms = Atoms("H", positions=[[0, 0, 0]], cell=[0.05, 5, 5], pbc=True)
    data = AtomicData.from_ase(atoms)
    with pytest.raises(DataError, match=r"key 'pos'.*image \[-?1, 0, 0\]"):
        validate(data, source="x", frame=0)


def test_slab_with_zero_vacuum_vector_is_fine():
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.8, 0, 1.8]], cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]],
                  pbc=[True, True, False])
    validate(AtomicData.from_ase(atoms))


def test_shape_mismatch():
    data = AtomicData.from_ase(water())
    data.forces = torch.zeros(2, 3)
    with pytest.raises(DataError, match=r"key 'forces': has shape \(2, 3\); expected \(3, 3\)"):
        validate(data, source="f.xyz", frame=4)


def test_skip_reports_count_and_reason(tmp_path, capsys):
    bad_forces = np.full((3, 3), np.nan)
    path = write_frames(tmp_path / "mixed.extxyz",
                        [good(0), (water(), -1.0, bad_forces), good(2), (water(), -1.0, bad_forces), good(4)])
    ds = open_dataset(path, on_error="skip")
    assert len(ds) == 3
    assert [f for f, _ in ds.skipped] == [1, 3]
    assert all("NaN" in msg and "forces" in msg for _, msg in ds.skipped)
    assert [int(d.idx) for d in ds] == [0, 2, 4]
    err = capsys.readouterr().err
    assert "skipped 2 of 5 frames" in err and "mixed.extxyz" in err and "2 x forces: contains NaN" in err


def test_default_does_not_skip(tmp_path):
    path = write_frames(tmp_path / "one_bad.extxyz", [good(0), (water(), np.nan, np.zeros((3, 3)))])
    ds = open_dataset(path)
    assert len(ds) == 2
    with pytest.raises(DataError):
        list(ds)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        open_dataset(tmp_path / "absent.xyz")
    (tmp_path / "x.weird").write_text("?")
    with pytest.raises(DataError, match=r"x.weird: cannot tell the format"):
        open_dataset(tmp_path / "x.weird")

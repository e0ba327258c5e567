"""Trajectories with velocities into forecast pairs: the formats, units, time-block splits, and a
clear error for every kind of bad trajectory."""

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.io.trajectory import Trajectory as ASETrajectory

from mlip.data import DataError
from mlip.data.trajectory import ForecastPairs, Trajectory, minimum_image, time_block_splits

QUARTZ = Path(__file__).resolve().parents[2] / "data" / "trajectories" / "quartz_bks_300K.lammpstrj.gz"


@pytest.fixture(scope="module")
def quartz():
    return Trajectory.read(QUARTZ, md_timestep=1.0)


def frames_of(traj, count=6):
    """ASE frames of the first ``count`` frames, with momenta and time_fs."""
    out = []
    for t in range(count):
        atoms = Atoms(numbers=traj.numbers, positions=traj.positions[t], cell=traj.cells[t], pbc=traj.pbc)
        atoms.set_masses(traj.masses)
        atoms.set_velocities(traj.velocities[t] / units.fs)
        atoms.info["time_fs"] = float(traj.times[t])
        out.append(atoms)
    return out


def test_the_lammps_dump_reads_with_its_units(quartz):
    assert len(quartz) == 101 and quartz.interval == pytest.approx(10.0)
    assert quartz.positions.shape == (101, 162, 3) and quartz.pbc.all()
    assert sorted(set(quartz.numbers.tolist())) == [8, 14]
    # 300 K of 162 atoms (3N - 3 degrees of freedom): LAMMPS's Å/ps became Å/fs
    kinetic = 0.5 * (quartz.masses[None, :, None] * quartz.velocities ** 2).sum(axis=(1, 2)) / units.fs ** 2
    temperature = 2 * kinetic / ((3 * 162 - 3) * units.kB)
    assert 250 < temperature.mean() < 350


def test_extxyz_with_momenta_and_ase_traj_give_the_same_velocities(quartz, tmp_path):
    frames = frames_of(quartz)
    ase.io.write(tmp_path / "q.extxyz", frames, format="extxyz")
    with ASETrajectory(tmp_path / "q.traj", "w") as writer:
        for atoms in frames:
            writer.write(atoms)
    from_xyz = Trajectory.read(tmp_path / "q.extxyz")
    from_traj = Trajectory.read(tmp_path / "q.traj", frame_interval=10.0)
    for traj in (from_xyz, from_traj):
        assert traj.interval == pytest.approx(10.0)
        np.testing.assert_allclose(traj.velocities, quartz.velocities[:6], rtol=1e-6, atol=1e-8)  # extxyz keeps 8 digits
        np.testing.assert_allclose(traj.positions, quartz.positions[:6], atol=1e-7)


def test_a_velocities_column_is_read_in_angstrom_per_fs(quartz, tmp_path):
    frames = []
    for atoms in frames_of(quartz, 3):
        velocities = atoms.get_velocities() * units.fs
        atoms.set_momenta(None)
        atoms.new_array("velocities", velocities)
        frames.append(atoms)
    ase.io.write(tmp_path / "v.extxyz", frames, format="extxyz")
    np.testing.assert_allclose(Trajectory.read(tmp_path / "v.extxyz").velocities, quartz.velocities[:3], rtol=1e-6, atol=1e-8)


def test_pairs_hold_the_state_and_the_targets_stride_frames_later(quartz):
    pairs = ForecastPairs([quartz], stride=3)
    assert len(pairs) == 98 and pairs.interval == pytest.approx(30.0)
    data = pairs[10]
    np.testing.assert_allclose(data.velocities.numpy(), quartz.velocities[10])
    np.testing.assert_allclose(data.next_velocities.numpy(), quartz.velocities[13])
    expected = minimum_image(quartz.positions[13] - quartz.positions[10], quartz.cells[10], quartz.pbc)
    np.testing.assert_allclose(data.displacement.numpy(), expected)
    assert float(data.displacement.abs().max()) < 1.0  # wrapped coordinates: no jump of a cell vector


def test_a_displacement_across_the_boundary_is_the_short_one():
    cell = np.diag([10.0, 10.0, 10.0])
    delta = minimum_image(np.array([[9.9, -9.95, 0.1]]), cell, np.array([True, True, False]))
    np.testing.assert_allclose(delta, [[-0.1, 0.05, 0.1]], atol=1e-12)


def test_time_blocks_are_contiguous_and_no_pair_crosses_them():
    splits = time_block_splits(100, 3, val_fraction=0.1, test_fraction=0.2)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert train.max() + 3 < val.min() and val.max() + 3 < test.min() and test.max() + 3 <= 99
    assert (train[0], val[0], test[0]) == (0, 70, 80)
    assert "val" not in time_block_splits(100, 3, 0.0, 0.1)
    with pytest.raises(DataError, match="not more than the stride"):
        time_block_splits(20, 3, 0.1, 0.1)


# -- bad trajectories: each error names the file, the frame and the key -------------------------------
def write(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return str(path)


def test_no_velocities(quartz, tmp_path):
    frames = frames_of(quartz, 3)
    frames[1].set_momenta(None)
    path = write(tmp_path / "a.extxyz", frames)
    with pytest.raises(DataError, match=r"a\.extxyz.*frame 1.*'velocities'.*no velocities"):
        Trajectory.read(path)


def test_uneven_spacing(quartz, tmp_path):
    frames = frames_of(quartz, 5)
    frames[3].info["time_fs"] = 35.0
    with pytest.raises(DataError, match=r"frame 3.*not equally spaced.*10 fs.*15 fs"):
        Trajectory.read(write(tmp_path / "b.extxyz", frames))


def test_time_that_goes_back(quartz, tmp_path):
    frames = frames_of(quartz, 3)
    frames[1].info["time_fs"] = 0.0
    with pytest.raises(DataError, match=r"frame 1.*does not advance"):
        Trajectory.read(write(tmp_path / "c.extxyz", frames))


def test_one_frame(quartz, tmp_path):
    with pytest.raises(DataError, match=r"d\.extxyz.*frame 0.*1 frame\(s\)"):
        Trajectory.read(write(tmp_path / "d.extxyz", frames_of(quartz, 1)))


def test_mismatched_atoms(quartz, tmp_path):
    frames = frames_of(quartz, 4)
    del frames[2][5]
    with pytest.raises(DataError, match=r"e\.extxyz.*frame 2.*'numbers'.*161 atoms against 162"):
        Trajectory.read(write(tmp_path / "e.extxyz", frames))


def test_no_time_at_all(quartz, tmp_path):
    frames = frames_of(quartz, 3)
    for atoms in frames:
        del atoms.info["time_fs"]
    path = write(tmp_path / "f.extxyz", frames)
    with pytest.raises(DataError, match=r"frame 0.*no time.*frame_interval"):
        Trajectory.read(path)
    assert Trajectory.read(path, frame_interval=2.0).interval == 2.0


def test_a_lammps_dump_needs_its_time_step():
    with pytest.raises(DataError, match=r"quartz_bks_300K.*frame 0.*'timestep'.*md_timestep"):
        Trajectory.read(QUARTZ)


def test_a_pair_past_the_end_is_refused(quartz):
    with pytest.raises(DataError, match="no frame 3 later"):
        ForecastPairs([quartz], 3, [np.array([98])])


def test_pairs_batch_into_a_graph(quartz):
    from mlip.graph import collate

    batch = collate([ForecastPairs([quartz], 3)[k] for k in (0, 5)], cutoff=4.0)
    assert batch.velocities.shape == (324, 3) and batch.displacement.dtype == torch.float64
    assert batch.masses.shape == (324,) and int(batch.num_graphs) == 2

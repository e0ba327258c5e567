"""mlip.simulate.structures: ASE's file@INDEX selections and their errors (files and directories of many
formats: tests/simulate/test_relax.py)."""

import pytest
from ase.build import molecule
from ase.io import write

from mlip.simulate.structures import read_structures


@pytest.fixture
def trajectory(tmp_path):
    frames = [molecule("H2O") for _ in range(5)]
    for k, atoms in enumerate(frames):
        atoms.positions[0, 0] += 0.01 * k
    path = tmp_path / "traj.xyz"
    write(path, frames)
    return path


@pytest.mark.parametrize("index, frames", [("0", [0]), ("-1", [4]), ("1:3", [1, 2]), ("::2", [0, 2, 4])])
def test_file_at_index_selects_frames_as_ase_does(trajectory, index, frames):
    selected = read_structures(f"{trajectory}@{index}")
    assert [name for name, _ in selected] == [f"traj.xyz:{k}" for k in frames]
    assert [round(a.positions[0, 0] - selected[0][1].positions[0, 0], 6) for _, a in selected] == \
        [round(0.01 * (k - frames[0]), 6) for k in frames]


def test_bad_selections_say_what_is_wrong(trajectory):
    with pytest.raises(ValueError, match="holds 5 frames"):
        read_structures(f"{trajectory}@7")
    with pytest.raises(ValueError, match="not a frame index"):
        read_structures(f"{trajectory}@first")
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        read_structures(f"{trajectory.parent / 'missing.xyz'}@0")

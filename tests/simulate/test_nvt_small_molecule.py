"""NVT on a 9-atom molecule holds its temperature: the mean over a few ps lands within statistical
error of the target for every NVT ensemble, counted over the 3N - 6 degrees of freedom that move.
(Before: ethanol at 300 K ran at 386 K, 27/21 x the target, and ASE's Langevin with fixcm=True
drifted upwards.) The forces come from a Morse bond network, a stand-in that makes the check
about the thermostats and the degree-of-freedom count, not a model, and keeps it fast."""

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from mlip.simulate.md import run_md


class MorseNetwork(Calculator):
    """Morse springs (depth 4 eV, width 1 1/Å: the stiffest vibration has a period of about 20 fs, so
    0.5 fs steps integrate it without a bias of their own) on every pair closer than 2.6 Å at the start
    (bonds and angles), at their starting lengths: a smooth, anharmonic, bound molecule."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, atoms):
        super().__init__()
        d = atoms.get_all_distances()
        self.pairs = np.array([(i, j) for i in range(len(atoms)) for j in range(i + 1, len(atoms)) if d[i, j] < 2.6])
        self.r0 = d[self.pairs[:, 0], self.pairs[:, 1]]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.get_positions()
        vec = pos[self.pairs[:, 1]] - pos[self.pairs[:, 0]]
        r = np.linalg.norm(vec, axis=1)
        x = np.exp(-(r - self.r0))
        self.results["energy"] = float((4.0 * (1 - x) ** 2).sum())
        dE_dr = 4.0 * 2 * (1 - x) * x
        f = (dE_dr / r)[:, None] * vec
        forces = np.zeros_like(pos)
        np.add.at(forces, self.pairs[:, 0], f)
        np.add.at(forces, self.pairs[:, 1], -f)
        self.results["forces"] = forces


def block_error(values: np.ndarray, blocks: int = 10) -> float:
    """Standard error of the mean from block averages (the samples are correlated)."""
    means = np.array([b.mean() for b in np.array_split(values, blocks)])
    return float(means.std(ddof=1) / np.sqrt(blocks))


@pytest.mark.parametrize("ensemble", ["nvt-langevin", "nvt-bussi", "nvt-nose-hoover"])
def test_a_small_molecule_holds_its_temperature(ensemble, tmp_path):
    atoms = molecule("CH3CH2OH")
    calc = MorseNetwork(atoms)
    result = run_md(atoms, calc, ensemble=ensemble, timestep=0.5, steps=12000, temperature=300.0, friction=0.05,
                    tdamp=10.0, out_dir=tmp_path, log_interval=5, trajectory_interval=10**6, restart_interval=10**6,
                    progress=False)
    assert result.stopped is None, result.stopped
    assert atoms.get_number_of_degrees_of_freedom() == 3 * len(atoms) - 6  # translation and rotation held
    p = atoms.get_momenta()
    assert np.abs(p.sum(0)).max() < 1e-10
    assert np.abs(np.cross(atoms.get_positions() - atoms.get_center_of_mass(), p).sum(0)).max() < 1e-8
    log = np.genfromtxt(tmp_path / "md.csv", delimiter=",", names=True)
    # the logged temperature is 2 KE / (21 k_B), the degrees of freedom that move
    np.testing.assert_allclose(log["temperature_K"], 2 * log["ekin_eV"] / (21 * units.kB), rtol=1e-4)
    settled = log["temperature_K"][log["time_fs"] >= 1000.0]  # after 1 ps; 5 ps averaged
    mean, error = settled.mean(), block_error(settled)
    # within statistical error (3.5 standard errors of the block means, at least 8 K), and within 10 %
    assert abs(mean - 300.0) < max(3.5 * error, 8.0) and abs(mean - 300.0) < 30.0, (mean, error)

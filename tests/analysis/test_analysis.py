"""mlip.analysis on trajectories whose answers are known: harmonic oscillators, a crystal, free flight."""

from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import bulk

from mlip.analysis import (compare, distribution_difference, mean_squared_displacement, pair_distribution,
                           spectral_overlap, temperature_summary, temperatures, vdos)


def oscillators(frequency_thz, frames=4000, interval=5.0, atoms=4, seed=0):
    """Independent 3D harmonic oscillators at ``frequency_thz``, random phases: positions and velocities."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) * interval  # fs
    omega = 2 * np.pi * frequency_thz * 1e-3  # rad/fs
    phase = rng.uniform(0, 2 * np.pi, size=(atoms, 3))
    amplitude = 0.05
    pos = amplitude * np.sin(omega * t[:, None, None] + phase) + 3.0 * np.arange(atoms)[None, :, None]
    vel = amplitude * omega * np.cos(omega * t[:, None, None] + phase)
    return SimpleNamespace(positions=pos, velocities=vel, times=t, masses=np.ones(atoms),
                           cells=np.zeros((frames, 3, 3)), pbc=np.zeros(3, bool), numbers=np.full(atoms, 6))


def test_the_vdos_of_an_oscillator_peaks_at_its_frequency():
    f, s = vdos(oscillators(12.0), max_lag=2000)
    assert f[np.argmax(s)] == pytest.approx(12.0, abs=0.6)
    assert np.trapezoid(s, f) == pytest.approx(1.0)
    # sampled at 20 fs (Nyquist 25 THz) it is still at 12 THz; at 50 fs (Nyquist 10 THz) it folds to 8 THz
    assert f[np.argmax(vdos(oscillators(12.0), max_lag=2000, every=4)[1])] == pytest.approx(12.0, abs=0.6)
    f50, s50 = vdos(oscillators(12.0), max_lag=4000, every=10)
    assert f50[np.argmax(s50)] == pytest.approx(8.0, abs=0.6)


def test_spectral_overlap_is_one_for_the_same_and_small_for_different_spectra():
    f, a = vdos(oscillators(12.0), max_lag=2000)
    _, b = vdos(oscillators(12.0, seed=3), max_lag=2000)
    _, c = vdos(oscillators(30.0), max_lag=2000)
    assert spectral_overlap(a, a, f) == pytest.approx(1.0)
    assert spectral_overlap(a, b, f) > 0.95
    assert spectral_overlap(a, c, f) < 0.1


def test_the_rdf_of_a_crystal_tends_to_one_and_counts_its_neighbours():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    traj = SimpleNamespace(positions=atoms.positions[None], cells=np.asarray(atoms.cell)[None], pbc=atoms.pbc,
                           numbers=atoms.numbers)
    r, g = pair_distribution(traj, (29, 29), r_max=5.0, bins=500)
    density = len(atoms) / atoms.get_volume()
    first = r < 3.0
    shells = np.sum(4 * np.pi * r[first] ** 2 * g[first] * density * (r[1] - r[0]))
    assert shells == pytest.approx(12.0, rel=1e-4)  # the 12 nearest neighbours of fcc (r² dr of the bin centres)
    assert r[np.argmax(g)] == pytest.approx(3.61 / np.sqrt(2), abs=0.01)
    assert distribution_difference(g, g, r) == 0.0


def test_msd_of_free_flight_grows_as_the_square_of_time():
    frames, interval = 50, 2.0
    t = np.arange(frames) * interval
    v = np.array([[0.01, 0.0, 0.0], [-0.01, 0.0, 0.0], [0.0, 0.02, 0.0], [0.0, -0.02, 0.0]])  # no net momentum
    traj = SimpleNamespace(positions=v[None] * t[:, None, None], times=t, masses=np.ones(4), cells=np.zeros((frames, 3, 3)),
                           pbc=np.zeros(3, bool))
    lag, msd = mean_squared_displacement(traj)
    np.testing.assert_allclose(msd, np.mean(np.sum(v ** 2, axis=1)) * lag ** 2, rtol=1e-10)


def test_temperatures_and_their_canonical_spread():
    traj = oscillators(12.0)
    values = temperatures(traj, dof=9)
    assert values.shape == (4000,) and (values > 0).all()
    summary = temperature_summary(np.array([290.0, 310.0]), dof=100, target=300.0)
    assert summary["mean_error"] == pytest.approx(0.0)
    assert summary["expected_std"] == pytest.approx(np.sqrt(2 / 100) * 300)


def test_compare_samples_the_reference_at_the_trajectory_interval(tmp_path):
    reference = oscillators(12.0, frames=8000, interval=5.0)
    forecast = oscillators(12.0, frames=2000, interval=20.0, seed=5)
    out = compare(reference, forecast, out_png=str(tmp_path / "compare.png"), dof=9)
    assert out["vdos_overlap"] > 0.9 and (tmp_path / "compare.png").stat().st_size > 0
    shifted = oscillators(15.0, frames=2000, interval=20.0, seed=5)
    assert compare(reference, shifted)["vdos_overlap"] < 0.5
    with pytest.raises(ValueError, match="not a multiple"):
        compare(reference, oscillators(12.0, frames=100, interval=7.0))

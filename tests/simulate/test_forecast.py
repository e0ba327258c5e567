"""mlip forecast's rollout (mlip.simulate.forecast): exact on a forecaster whose dynamics are known
(free flight), the CSVR thermostat's canonical statistics and degrees of freedom, guards that stop
one structure of a batch cleanly, restarts, and a batch equal to its structures one by one."""

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, molecule

from mlip.models import build
from mlip.models.forecaster import Forecaster
from mlip.simulate.forecast import ForecastLimits, csvr_factor, degrees_of_freedom, run_forecast
from mlip.testing.forecast_suite import randomized_forecaster


class FreeFlight(Forecaster):
    """Ballistic motion: displacement v Δt, velocity kept. A rollout of it is known exactly."""

    def __init__(self, interval: float = 5.0):
        super().__init__(cutoff=3.0)
        self.set_statistics(displacement_rms=0.1, velocity_rms=0.01, interval=interval)

    def node_outputs(self, atomic_numbers, velocities, edge_index, edge_vec):
        speed = velocities * self.velocity_scale
        return torch.stack([speed * self.interval / self.displacement_scale, velocities], dim=1)


def with_velocities(atoms, velocities):
    atoms = atoms.copy()
    atoms.set_velocities(np.asarray(velocities) / units.fs)  # Å/fs
    return atoms


def gas(temperature=300.0, seed=0, count=24):
    """Argon atoms on a coarse grid in a periodic box (no two within 3 Å for the whole test)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)[:count] * 8.0
    atoms = Atoms(f"Ar{count}", positions=grid, cell=[32.0] * 3, pbc=True)
    v = rng.normal(size=(count, 3)) * np.sqrt(units.kB * temperature / atoms.get_masses()[:, None]) * units.fs
    return with_velocities(atoms, v - v.mean(0))


def test_a_free_flight_rollout_is_exact(tmp_path):
    atoms = gas()
    v = atoms.get_velocities() * units.fs
    [result] = run_forecast([("gas", atoms)], FreeFlight().double(), steps=10, temperature=None, out_dir=tmp_path,
                            progress=False, restart_interval=5)
    assert result.steps == 10 and result.stopped is None and result.simulated_ps == pytest.approx(0.05)
    frames = ase.io.read(tmp_path / "trajectory.extxyz", ":")
    assert len(frames) == 11 and frames[-1].info["time_fs"] == pytest.approx(50.0)
    expected = atoms.positions + 10 * 5.0 * v
    moved = frames[-1].positions - expected
    frac = moved @ np.linalg.inv(atoms.cell)
    np.testing.assert_allclose(frac - np.round(frac), 0.0, atol=1e-8)  # equal up to whole cells (wrapped; 8 digits)
    np.testing.assert_allclose(frames[-1].get_velocities() * units.fs, v, rtol=1e-6, atol=1e-10)
    assert ase.io.read(tmp_path / "restart.extxyz").info["forecast_step"] == 10
    assert (tmp_path / "forecast.png").stat().st_size > 0
    assert len(open(tmp_path / "forecast.csv").readlines()) == 12


def test_a_restart_continues_the_same_rollout(tmp_path):
    model = FreeFlight().double()
    run_forecast([("gas", gas())], model, steps=8, temperature=None, out_dir=tmp_path / "once", progress=False)
    run_forecast([("gas", gas())], model, steps=4, temperature=None, out_dir=tmp_path / "twice", progress=False)
    restart = ase.io.read(tmp_path / "twice" / "restart.extxyz")
    run_forecast([("restart", restart)], model, steps=8, temperature=None, out_dir=tmp_path / "twice",
                 restart=True, progress=False)
    once = ase.io.read(tmp_path / "once" / "trajectory.extxyz", ":")
    twice = ase.io.read(tmp_path / "twice" / "trajectory.extxyz", ":")
    assert len(once) == len(twice) == 9
    np.testing.assert_allclose(twice[-1].positions, once[-1].positions, atol=1e-6)  # through an extxyz restart
    assert len(open(tmp_path / "twice" / "forecast.csv").readlines()) == 10


def test_csvr_samples_the_canonical_kinetic_energy():
    rng = np.random.default_rng(0)
    dof, kt = 30, units.kB * 300.0
    target = 0.5 * dof * kt
    kinetic, samples = 0.1 * target, []
    for step in range(40000):
        kinetic *= csvr_factor(kinetic, target, dof, interval=10.0, tau=50.0, rng=rng) ** 2
        if step > 2000:
            samples.append(kinetic)
    samples = np.asarray(samples)
    assert samples.mean() == pytest.approx(target, rel=0.03)
    assert samples.var() == pytest.approx(dof * kt ** 2 / 2, rel=0.15)  # the canonical variance of K


def test_degrees_of_freedom():
    assert degrees_of_freedom(bulk("Si", "diamond", a=5.43, cubic=True), angular=True) == 3 * 8 - 3
    assert degrees_of_freedom(molecule("CH3CH2OH"), angular=True) == 3 * 9 - 6
    assert degrees_of_freedom(molecule("CH3CH2OH"), angular=False) == 3 * 9 - 3
    assert degrees_of_freedom(molecule("CO2"), angular=True) == 3 * 3 - 5


def test_the_thermostat_brings_a_cold_gas_to_its_temperature(tmp_path):
    # free flight: the atoms pass through each other, so no distance guard
    [result] = run_forecast([("gas", gas(temperature=60.0, count=64))], FreeFlight(interval=2.0).double(), steps=1500,
                            temperature=300.0, tau=40.0, out_dir=tmp_path, progress=False, seed=1,
                            limits=ForecastLimits(low=0.0, high=10.0, min_distance=0.0), trajectory_interval=500)
    log = np.genfromtxt(tmp_path / "forecast.csv", delimiter=",", names=True)
    late = log["temperature_K"][200:]
    assert late.mean() == pytest.approx(300.0, rel=0.05)  # its standard error: about 4 K
    assert late.std() == pytest.approx(300.0 * np.sqrt(2 / (3 * 64 - 3)), rel=0.2)  # canonical fluctuations
    assert result.degrees_of_freedom == 3 * 64 - 3


def test_a_guard_stops_one_structure_and_the_others_go_on(tmp_path):
    pair = with_velocities(Atoms("Ar2", positions=[[0, 0, 0], [3.1, 0, 0]], cell=[20.0] * 3, pbc=True),
                           [[0.04, 0, 0], [-0.04, 0, 0]])  # 0.4 Å closer a step
    results = run_forecast([("pair", pair), ("gas", gas())], FreeFlight().double(), steps=12, temperature=None,
                           out_dir=tmp_path, progress=False, limits=ForecastLimits(low=0.0, high=10.0, min_distance=1.0))
    stopped, going = results
    assert "closer than the limit 1.0 Å" in stopped.stopped and stopped.steps == 5  # 3.1 - 0.4 k < 1.0 at k = 6
    assert going.stopped is None and going.steps == 12
    last = ase.io.read(tmp_path / "0-pair" / "last_good.extxyz")
    assert last.get_distance(0, 1, mic=True) == pytest.approx(1.1)
    assert ase.io.read(tmp_path / "0-pair" / "restart.extxyz").info["forecast_step"] == 5


def test_a_system_that_freezes_leaves_the_temperature_band(tmp_path):
    model = build("trajcast", "small").double().eval()  # zero readout: every velocity forecast is 0
    model.set_statistics(0.05, 0.01, 5.0)
    [result] = run_forecast([("ethanol", molecule("CH3CH2OH"))], model, steps=50, temperature=300.0, out_dir=tmp_path,
                            progress=False, limits=ForecastLimits(window=5))
    assert result.stopped is not None and "left [150, 450] K" in result.stopped and result.steps == 3  # the last good step


def test_a_batch_is_its_structures_one_by_one(tmp_path):
    model = randomized_forecaster(build("trajcast", "small"))
    structures = [("ethanol", molecule("CH3CH2OH")), ("si", bulk("Si", "diamond", a=5.43, cubic=True))]
    loose = ForecastLimits(low=0.0, high=1e6, min_distance=0.01)
    run_forecast(structures, model, steps=3, temperature=None, out_dir=tmp_path / "batch", progress=False,
                 limits=loose, seed=2)
    for k, (name, atoms) in enumerate(structures):
        run_forecast([(name, atoms)], model, steps=3, temperature=None, out_dir=tmp_path / name, progress=False,
                     limits=loose, seed=2 + k)
        batched = ase.io.read(tmp_path / "batch" / f"{k}-{name}" / "trajectory.extxyz", -1)
        alone = ase.io.read(tmp_path / name / "trajectory.extxyz", -1)
        np.testing.assert_allclose(batched.positions, alone.positions, atol=1e-9)
        np.testing.assert_allclose(batched.get_velocities(), alone.get_velocities(), atol=1e-9)

"""MD: NVE conserves energy, thermostats reach their temperature, barostats move the cell, an
exploding run stops cleanly with its last good frame and restarts; `mlip md` end to end."""

import csv

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from mlip.calculator import MLIPCalculator
from mlip.cli import main
from mlip.simulate import Limits, run_md
from mlip.simulate.md import read_restart
from tests.models.structures import ethanol as ethanol_structure

# the fitted models of conftest.py are made once a run: one xdist worker runs the modules that use them
pytestmark = pytest.mark.xdist_group("simulate-fitted")


def log(path):
    return {k: np.array([float(r[k]) for r in rows]) for rows in [list(csv.DictReader(open(path)))]
            for k in rows[0]}


def test_nve_conserves_energy(ethanol, tmp_path):
    """0.5 ps at 0.5 fs, float64: total energy drift below 1 meV/atom."""
    atoms = ethanol_structure()
    result = run_md(atoms, MLIPCalculator(ethanol), ensemble="nve", timestep=0.5, steps=1000, temperature=300.0,
                    out_dir=tmp_path, log_interval=20, trajectory_interval=250, progress=False)
    assert result.stopped is None and result.steps == 1000
    values = log(tmp_path / "md.csv")
    assert values["temperature_K"].max() > 100  # it moves
    drift = np.abs(values["etot_eV"] - values["etot_eV"][0]).max() / len(atoms)
    assert drift < 1e-3


@pytest.mark.parametrize("ensemble", ["nvt-langevin", "nvt-bussi", "nvt-nose-hoover"])
def test_thermostat_reaches_target_temperature(cu_model, ensemble, tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    run_md(atoms, MLIPCalculator(cu_model), ensemble=ensemble, timestep=2.0, steps=500, temperature=600.0,
           friction=0.05, tdamp=20.0, out_dir=tmp_path, log_interval=5, progress=False)
    temperature = log(tmp_path / "md.csv")["temperature_K"]
    assert np.mean(temperature[len(temperature) // 4:]) == pytest.approx(600.0, rel=0.15)


@pytest.mark.parametrize("ensemble", ["npt-mtk", "npt-berendsen"])
def test_barostat_compresses_under_pressure(cu_model, ensemble, tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    v0 = atoms.cell.volume
    result = run_md(atoms, MLIPCalculator(cu_model), ensemble=ensemble, timestep=2.0, steps=300, temperature=300.0,
                    pressure=20.0, tdamp=50.0, pdamp=200.0, out_dir=tmp_path, progress=False)
    assert result.stopped is None
    final = ase.io.read(tmp_path / "restart.extxyz")
    assert final.cell.volume < 0.99 * v0


def test_exploding_run_stops_with_last_good_frame_and_restarts(cu_model, tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    calc = MLIPCalculator(cu_model)
    limits = Limits(max_force=20.0, min_distance=1.6)
    # 30 fs steps at 3000 K throw atoms into each other within a few steps
    result = run_md(atoms, calc, ensemble="nve", timestep=30.0, steps=400, temperature=3000.0, out_dir=tmp_path,
                    limits=limits, restart_interval=1000, progress=False)
    assert result.stopped is not None and result.steps < 400
    assert "last good frame" in result.stopped and ("apart" in result.stopped or "force" in result.stopped
                                                     or "temperature" in result.stopped)
    good = ase.io.read(tmp_path / "last_good.extxyz")
    saved, step = read_restart(tmp_path / "restart.extxyz")
    assert step == result.steps
    np.testing.assert_allclose(saved.positions, good.positions)
    assert np.abs(saved.get_momenta()).max() > 0
    good.calc = calc
    assert np.linalg.norm(good.get_forces(), axis=1).max() < 20.0
    # continue from the restart with a sane time step, to the total step count; the restart is the
    # last frame within the tight limits above, up to 5000 K hot: its first steps may pass them
    hot = Limits(max_temperature=1.0e4)  # and the default force and distance limits
    resumed = run_md(None, calc, ensemble="nvt-langevin", timestep=1.0, steps=step + 50, temperature=300.0,
                     out_dir=tmp_path, restart=str(tmp_path / "restart.extxyz"), limits=hot, log_interval=1,
                     progress=False)
    assert resumed.stopped is None and resumed.steps == step + 50
    steps_logged = log(tmp_path / "md.csv")["step"]
    assert steps_logged[-1] == step + 50 and np.all(np.diff(steps_logged) > 0)


def test_md_command(cu_model, tmp_path, capsys):
    cu_model.save(tmp_path / "cu.model")
    ase.io.write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)))
    out = tmp_path / "md"
    code = main(["md", str(tmp_path / "cu.cif"), str(tmp_path / "cu.model"), "--ensemble", "nvt-langevin", "--steps",
                 "40", "--timestep", "2", "--temperature", "500", "--out", str(out), "-q"])
    assert code == 0
    assert "ns/day" in capsys.readouterr().out
    assert len(ase.io.read(out / "trajectory.extxyz", index=":")) == 5  # steps 0, 10, .., 40
    code = main(["md", "--restart", str(out / "restart.extxyz"), str(tmp_path / "cu.model"), "--steps", "60",
                 "--out", str(out), "-q"])
    assert code == 0 and log(out / "md.csv")["step"][-1] == 60


def test_max_uncertainty_stops_a_run_driven_out_of_the_data(cu_committee, tmp_path):
    """The committee's largest per-atom force std stays below 0.4 eV/Å at 300 K (measured: at most
    0.14) and passes it at 3000 K (median 0.7): the hot run stops with the guards' clean stop, and
    md.csv logs the uncertainty every logged step."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    calc = MLIPCalculator(cu_committee)
    limits = Limits(max_uncertainty=0.4)
    calm = run_md(atoms.copy(), calc, ensemble="nvt-langevin", timestep=2.0, steps=200, temperature=300.0,
                  out_dir=tmp_path / "calm", limits=limits, progress=False)
    assert calm.stopped is None
    logged = log(tmp_path / "calm" / "md.csv")["max_forces_std_eVA"]
    assert len(logged) == 21 and 0 < logged[1:].max() < 0.4
    hot = run_md(atoms.copy(), calc, ensemble="nvt-langevin", timestep=2.0, steps=2000, temperature=3000.0,
                 out_dir=tmp_path / "hot", limits=limits, progress=False)
    assert hot.stopped is not None and "force uncertainty" in hot.stopped and "exceeds the limit 0.4" in hot.stopped
    assert hot.steps < 2000
    saved, step = read_restart(tmp_path / "hot" / "restart.extxyz")
    assert step == hot.steps and (tmp_path / "hot" / "last_good.extxyz").exists()


def test_max_uncertainty_needs_a_model_with_one(cu_model, tmp_path):
    with pytest.raises(ValueError, match="needs a model with an uncertainty"):
        run_md(bulk("Cu", "fcc", a=3.6, cubic=True), MLIPCalculator(cu_model), steps=2, out_dir=tmp_path,
               limits=Limits(max_uncertainty=0.4), progress=False)


def test_md_command_with_a_committee(cu_committee, tmp_path, capsys):
    for k, member in enumerate(cu_committee.members):
        member.save(tmp_path / f"cu{k}.model")
    ase.io.write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)))
    code = main(["md", str(tmp_path / "cu.cif"), f"{tmp_path / 'cu0.model'},{tmp_path / 'cu1.model'}", "--steps",
                 "2000", "--timestep", "2", "--temperature", "3000", "--max-uncertainty", "0.4",
                 "--out", str(tmp_path / "md"), "-q"])
    assert code == 3 and "force uncertainty" in capsys.readouterr().out
    assert (tmp_path / "md" / "restart.extxyz").exists()


def test_the_log_says_how_close_a_run_comes_to_the_training_distances(cu_model, tmp_path, capsys):
    """A model that knows its data's shortest Cu-Cu distance (2.50 Å here) logs the closest pair over
    it at every logged step, plots it, and the command prints the closest approach; a hot run
    reaches below the data."""
    import copy

    model = copy.deepcopy(cu_model)
    model.set_pair_min_distance([(29, 29, 2.50)])
    model.save(tmp_path / "cu.model")
    ase.io.write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)))
    out = tmp_path / "md"
    code = main(["md", str(tmp_path / "cu.cif"), str(tmp_path / "cu.model"), "--ensemble", "nvt-langevin", "--steps",
                 "40", "--timestep", "2", "--temperature", "2000", "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert code == 0
    ratios = log(out / "md.csv")["closest_over_rmin"]
    assert len(ratios) == 5 and ratios[0] == pytest.approx(3.6 / np.sqrt(2) / 2.50, abs=1e-4)  # logged to 4 places
    assert ratios.min() < ratios[0]
    assert "closest approach to the training data's shortest distances at step" in printed
    assert "Cu-Cu distance in the training data" in printed
    plain = tmp_path / "plain"
    run_md(bulk("Cu", "fcc", a=3.6, cubic=True), MLIPCalculator(cu_model), steps=10, out_dir=plain, progress=False)
    assert "closest_over_rmin" not in log(plain / "md.csv")

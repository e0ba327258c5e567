"""Molecular dynamics with ASE's integrators, guarded against blow-ups, logged, restartable.

Ensembles: "nve" (velocity Verlet), "nvt-langevin", "nvt-nose-hoover" (Nose-Hoover chain),
"nvt-bussi" (stochastic velocity rescaling), "npt-mtk" (ASE's isotropic MTK Nose-Hoover chain
barostat), "npt-berendsen". Units at this interface: time step fs, temperature K, pressure GPa.

NVE and NVT runs hold the centre of mass still, and a molecule's rotation too
(mlip.simulate.rigid_motion.FixRigidMotion), so temperatures and thermostats count the degrees of
freedom that move: 3N - 3 in a periodic cell, 3N - 6 for a molecule (3N - 5 if linear).

After every step the run checks the largest force, the shortest interatomic distance and the
temperature. A step that breaks a limit stops the run with :class:`MDInstability`; the last good
frame (the state before that step) is written, and the restart file holds it, so ``restart``
(``mlip md --restart``) continues from there.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from ase import Atoms, units

from mlip.simulate.rigid_motion import FixRigidMotion

ENSEMBLES = ("nve", "nvt-langevin", "nvt-nose-hoover", "nvt-bussi", "npt-mtk", "npt-berendsen")
LOG_FIELDS = ("step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K", "pressure_GPa")
UNCERTAINTY_FIELD = "max_forces_std_eVA"  # logged too when the model gives an uncertainty (mlip.uncertainty)
DATA_FIELD = "closest_over_rmin"  # logged too when the model knows its training data's shortest pair distances


class MDInstability(RuntimeError):
    """The run broke a limit (force, distance, temperature); the message says which and where."""


@dataclass
class Limits:
    """Stop when any force exceeds ``max_force`` eV/Å, two atoms come closer than ``min_distance``
    Å, the temperature exceeds ``max_temperature`` K (None: 10x the target, at least 5000 K), or
    the largest per-atom force uncertainty exceeds ``max_uncertainty`` eV/Å (None: no limit; needs
    a model with an uncertainty, such as a committee)."""

    max_force: float = 50.0
    min_distance: float = 0.5
    max_temperature: Optional[float] = None
    max_uncertainty: Optional[float] = None


def max_force_uncertainty(atoms: Atoms) -> Optional[tuple[int, float]]:
    """(atom, eV/Å) of the largest per-atom force uncertainty of the last calculation, None when the
    calculator gives none."""
    spread = getattr(atoms.calc, "results", {}).get("forces_std")
    if spread is None:
        return None
    spread = np.asarray(spread)
    i = int(np.nanargmax(np.where(np.isfinite(spread), spread, np.inf)))
    return i, float(spread[i])


def uncertainty_limit_error(limits: Limits, calculator) -> Optional[str]:
    """Why ``limits.max_uncertainty`` cannot be applied with ``calculator`` (None: it can)."""
    if limits.max_uncertainty is None:
        return None
    provided = "forces_std" in getattr(calculator, "implemented_properties", ())
    return None if provided else ("--max-uncertainty needs a model with an uncertainty (a committee: "
                                  "mlip train ... ensemble=K, or several model files); this one gives none")


def make_dynamics(atoms: Atoms, ensemble: str, timestep: float, temperature: float = 300.0, pressure: float = 0.0,
                  seed: int = 0, friction: float = 0.01, tdamp: float = 100.0, pdamp: float = 1000.0):
    """The ASE integrator. timestep, tdamp, pdamp fs; temperature K; pressure GPa; friction 1/fs."""
    rng = np.random.default_rng(seed)
    dt = timestep * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "nvt-langevin":
        from ase.md.langevin import Langevin

        # fixcm=False: the centre of mass (and a molecule's rotation) are held by FixRigidMotion, which
        # ASE's own fixcm=True does not do correctly for small systems (its FutureWarning)
        return Langevin(atoms, timestep=dt, temperature_K=temperature, friction=friction / units.fs, rng=rng,
                        fixcm=False)
    if ensemble == "nvt-nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        # ASE's chain drives the kinetic energy to 3N kT / 2: aimed at the degrees of freedom that move
        # (3N less what the constraints remove), its target is scaled to land there
        scaled = temperature * atoms.get_number_of_degrees_of_freedom() / (3 * len(atoms))
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=scaled, tdamp=tdamp * units.fs)
    if ensemble == "nvt-bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep=dt, temperature_K=temperature, taut=tdamp * units.fs, rng=rng)
    if ensemble in ("npt-mtk", "npt-berendsen") and not atoms.pbc.all():
        raise ValueError(f"{ensemble} needs a periodic cell in all three directions")
    if ensemble == "npt-mtk":
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(atoms, timestep=dt, temperature_K=temperature, pressure_au=pressure * units.GPa,
                               tdamp=tdamp * units.fs, pdamp=pdamp * units.fs)
    if ensemble == "npt-berendsen":
        from ase.md.nptberendsen import NPTBerendsen

        return NPTBerendsen(atoms, timestep=dt, temperature_K=temperature, pressure_au=pressure * units.GPa,
                            taut=tdamp * units.fs, taup=pdamp * units.fs, compressibility_au=4.57e-5 / units.bar)
    raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")


def pressure_gpa(atoms: Atoms) -> float:
    """Instantaneous pressure (virial and kinetic parts), GPa; NaN unless periodic in all three directions."""
    if not atoms.pbc.all():
        return float("nan")
    return float(-np.trace(atoms.get_stress(voigt=False, include_ideal_gas=True)) / 3 / units.GPa)


def check_limits(atoms: Atoms, limits: Limits, target_temperature: float, step: int) -> None:
    """Raise MDInstability naming the broken limit, the step and the atoms involved."""
    forces = atoms.get_forces()
    norms = np.linalg.norm(forces, axis=1)
    if not np.isfinite(forces).all() or norms.max() > limits.max_force:
        i = int(np.nanargmax(np.where(np.isfinite(norms), norms, np.inf)))
        raise MDInstability(f"step {step}: force {norms[i]:.3g} eV/Å on atom {i} ({atoms[i].symbol}) exceeds the "
                            f"limit {limits.max_force} eV/Å")
    from mlip.graph.neighbors import closest_pair

    pair = closest_pair(atoms.get_positions(), atoms.get_cell(), atoms.get_pbc(), limits.min_distance)
    if pair is not None:
        i, j, _, d = pair
        raise MDInstability(f"step {step}: atoms {i} and {j} are {d:.3f} Å apart, closer than the "
                            f"limit {limits.min_distance} Å")
    t_max = limits.max_temperature or max(5000.0, 10 * target_temperature)
    temperature = atoms.get_temperature()
    if not np.isfinite(temperature) or temperature > t_max:
        raise MDInstability(f"step {step}: temperature {temperature:.1f} K exceeds the limit {t_max:.0f} K")
    if limits.max_uncertainty is not None:
        i, value = max_force_uncertainty(atoms)
        if not np.isfinite(value) or value > limits.max_uncertainty:
            raise MDInstability(f"step {step}: force uncertainty {value:.3g} eV/Å on atom {i} ({atoms[i].symbol}) "
                                f"exceeds the limit {limits.max_uncertainty} eV/Å: the structure has left what "
                                f"the model knows")


def write_restart(path, atoms: Atoms, step: int) -> None:
    """One-frame extxyz with positions, momenta, cell and the step, written atomically."""
    import ase.io

    frame = atoms.copy()
    frame.calc = None
    frame.info["md_step"] = int(step)
    tmp = f"{path}.tmp-{os.getpid()}"
    ase.io.write(tmp, frame, format="extxyz")
    os.replace(tmp, path)


def read_restart(path):
    """(atoms with momenta, step) from a restart file."""
    import ase.io

    atoms = ase.io.read(path, format="extxyz")
    if "md_step" not in atoms.info:
        raise ValueError(f"{path}: not an mlip md restart file (no md_step in its header)")
    return atoms, int(atoms.info.pop("md_step"))


@dataclass
class MDResult:
    steps: int           # steps done in total (restarts included)
    seconds: float       # wall time of this run
    ns_per_day: float
    stopped: Optional[str] = None  # the MDInstability message, if the run stopped early
    closest: Optional[str] = None  # the logged step whose closest pair came nearest the training data's r_min


def training_distances(calculator) -> Optional[np.ndarray]:
    """(119,119) Å: the shortest distance of each element pair in the model's training data (0 where
    the data lacks the pair; mlip.nn.repulsion), or None when the model carries none (exported files,
    models without the prior). A committee's: the largest of its members'."""
    model = getattr(calculator, "model", None)
    members = list(getattr(model, "members", None) or [model])
    tables = [m.repulsion.pair_min_distance.detach().cpu().numpy() for m in members
              if getattr(m, "repulsion", None) is not None and hasattr(m.repulsion, "pair_min_distance")]
    if not tables or not any(t.any() for t in tables):
        return None
    return np.max(tables, axis=0)


def closest_to_data(atoms: Atoms, table: np.ndarray) -> Optional[tuple[float, int, int, float]]:
    """(d / r_min, i, j, d Å) of the pair of atoms nearest its element pair's shortest training
    distance, relative to it, among pairs within 1.5 x the largest r_min (periodic images included);
    None when no pair is that close. Below 1: the run is where the model never saw the pair."""
    from mlip.graph.neighbors import neighbor_list_numpy

    z = atoms.get_atomic_numbers()
    reach = 1.5 * float(table[np.ix_(np.unique(z), np.unique(z))].max())
    if reach <= 0:
        return None
    pos, cell = atoms.get_positions(), np.asarray(atoms.get_cell())
    i, j, shift = neighbor_list_numpy(pos, cell, atoms.get_pbc(), reach)
    r_min = table[z[i], z[j]]
    keep = r_min > 0
    if not keep.any():
        return None
    i, j, shift, r_min = i[keep], j[keep], shift[keep], r_min[keep]
    d = np.linalg.norm(pos[j] - pos[i] + shift @ cell, axis=1)
    k = int(np.argmin(d / r_min))
    return float(d[k] / r_min[k]), int(i[k]), int(j[k]), float(d[k])


def run_md(atoms: Atoms, calculator, ensemble: str = "nvt-langevin", timestep: float = 1.0, steps: int = 1000,
           temperature: float = 300.0, pressure: float = 0.0, seed: int = 0, out_dir="md",
           trajectory_interval: int = 10, log_interval: int = 10, restart_interval: int = 100,
           friction: float = 0.01, tdamp: float = 100.0, pdamp: float = 1000.0, limits: Optional[Limits] = None,
           restart: Optional[str] = None, init_velocities: bool = True, progress: bool = True) -> MDResult:
    """Run ``steps`` MD steps in total (counting those before a restart) and write, in ``out_dir``:
    trajectory.extxyz (every trajectory_interval steps, with momenta and each frame's time_fs), md.csv (LOG_FIELDS every log_interval, the
    largest per-atom force uncertainty for a model with one, and for a model that knows its training
    data's shortest pair distances the closest pair relative to its own, DATA_FIELD),
    restart.extxyz (every restart_interval steps and at the end), last_good.extxyz if it stops,
    md.png (energies, temperature, pressure against time).
    Returns an MDResult; an instability is reported in it (and raised by the CLI as an error)."""
    import ase.io
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from mlip.progress import progress as tqdm

    limits = limits or Limits()
    problem = uncertainty_limit_error(limits, calculator)
    if problem:
        raise ValueError(problem)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{k}.extxyz" for k in ("trajectory", "restart", "last_good")}
    log_path = out / "md.csv"
    first = 0
    if restart is not None:
        saved, first = read_restart(restart)
        atoms = saved
    elif init_velocities and temperature > 0:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    atoms.calc = calculator
    if not ensemble.startswith("npt") and not atoms.constraints:
        # total momentum (and a molecule's angular momentum) stay zero: count and thermostat the rest
        atoms.set_constraint(FixRigidMotion(rotation=not atoms.pbc.any()))
    dynamics = make_dynamics(atoms, ensemble, timestep, temperature, pressure, seed + first, friction, tdamp, pdamp)
    mode = "a" if restart is not None and log_path.exists() else "w"
    log_uncertainty = "forces_std" in getattr(calculator, "implemented_properties", ())
    data_table = training_distances(calculator)
    closest = {"ratio": np.inf, "text": None}
    log_file = open(log_path, mode, newline="")
    log = csv.writer(log_file)
    if mode == "w":
        log.writerow(LOG_FIELDS + ((UNCERTAINTY_FIELD,) if log_uncertainty else ())
                     + ((DATA_FIELD,) if data_table is not None else ()))
        for p in (paths["trajectory"], paths["last_good"]):
            p.unlink(missing_ok=True)

    def record(step: int) -> None:
        if step % log_interval == 0:
            epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
            row = [step, f"{step * timestep:.4f}", f"{epot:.8f}", f"{ekin:.8f}", f"{epot + ekin:.8f}",
                   f"{atoms.get_temperature():.4f}", f"{pressure_gpa(atoms):.6f}"]
            if log_uncertainty:
                row.append(f"{max_force_uncertainty(atoms)[1]:.6f}")
            if data_table is not None:
                near = closest_to_data(atoms, data_table)
                row.append(f"{near[0]:.4f}" if near else "nan")
                if near and near[0] < closest["ratio"]:
                    symbols = atoms.get_chemical_symbols()
                    a, b = near[1], near[2]
                    closest.update(ratio=near[0], text=(
                        f"step {step}: atoms {a} ({symbols[a]}) and {b} ({symbols[b]}) {near[3]:.3f} Å apart, "
                        f"{near[0]:.3f} x the shortest {symbols[a]}-{symbols[b]} distance in the training data"
                        + (" (outside the data)" if near[0] < 1 else "")))
            log.writerow(row)
            log_file.flush()
        atoms.info["time_fs"] = step * timestep  # what mlip.data.trajectory reads (a forecaster's training data)
        if step % trajectory_interval == 0:
            ase.io.write(paths["trajectory"], atoms, format="extxyz", append=True)
        if step % restart_interval == 0:
            write_restart(paths["restart"], atoms, step)

    check_limits(atoms, limits, temperature, first)
    if restart is None:
        record(0)
    good = atoms.copy()
    stopped = None
    start = time.perf_counter()
    step = first
    bar = tqdm(total=steps, initial=first, desc=f"md {ensemble}", unit="step", disable=not progress)
    try:
        while step < steps:
            dynamics.run(1)
            step += 1
            try:
                check_limits(atoms, limits, temperature, step)
            except MDInstability as error:
                stopped = f"{error}; last good frame (step {step - 1}) in {paths['last_good']}, restart from " \
                          f"{paths['restart']}"
                ase.io.write(paths["last_good"], good, format="extxyz")
                write_restart(paths["restart"], good, step - 1)
                step -= 1
                break
            good = atoms.copy()
            record(step)
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(T=f"{atoms.get_temperature():.0f} K", E=f"{atoms.get_total_energy():.4f} eV")
        else:
            write_restart(paths["restart"], atoms, step)
    finally:
        bar.close()
        log_file.close()
        from mlip.simulate.plots import md_plot

        md_plot(log_path, out / "md.png")
    seconds = time.perf_counter() - start
    simulated_ns = (step - first) * timestep * 1e-6
    return MDResult(steps=step, seconds=seconds, ns_per_day=simulated_ns / max(seconds, 1e-9) * 86400,
                    stopped=stopped, closest=closest["text"])

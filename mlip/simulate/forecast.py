"""Force-free MD: roll a forecaster (mlip.models.forecaster) forward, one interval Δt a step.

Each step wraps positions into the cell, rebuilds the graph, forecasts every atom's displacement
and velocity Δt later, and applies the CSVR thermostat (Bussi, Donadio, Parrinello 2007: the
kinetic energy drawn towards its canonical distribution with time constant ``tau``) with the
degrees of freedom that move: 3N less the 3 of the total momentum (held at zero, as the model
conserves it), less 3 more for an isolated molecule when the model conserves angular momentum.
Several structures run as one batch, each with its own thermostat, files and guards.

Guards, as mlip md's: a structure stops, with a message, its last good frame and a restart file,
when its temperature averaged over the last ``window`` steps (1 ps by default) leaves [low, high] x the target (or is
above 10 x it at any step), or two of its atoms come closer than ``min_distance`` Å (read from the
graph the next forecast uses: one neighbour search a step); the others go on.

Units: fs, K, Å, Å/fs, amu. Files per structure (``out`` itself for one structure, ``out/<k>-<name>``
for several): trajectory.extxyz (positions, momenta, time_fs), forecast.csv (step, time_fs,
temperature_K, kinetic_eV), forecast.png, restart.extxyz (and last_good.extxyz if it stopped).
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from ase import Atoms, units

from mlip.graph.build import radius_graph_pbc
from mlip.graph.edges import edge_vectors
from mlip.nn.momentum import set_linear_momentum

KINETIC = 1.0 / units.fs ** 2  # eV per amu (Å/fs)^2
LOG_FIELDS = ("step", "time_fs", "temperature_K", "kinetic_eV")


@dataclass
class ForecastLimits:
    """Stop a structure when its temperature, averaged over the last ``window`` steps (None: 1 ps of
    them, so that a small molecule's canonical fluctuations, sqrt(2/N_f) of T, average out), leaves
    [``low``, ``high``] x the target (an unthermostatted run: x its starting temperature), or two atoms
    come closer than ``min_distance`` Å."""

    low: float = 0.5
    high: float = 1.5
    window: Optional[int] = None
    min_distance: float = 0.5

    def steps(self, interval: float) -> int:
        """The temperature guard's window in steps of ``interval`` fs."""
        return int(self.window) if self.window else max(1, int(round(1000.0 / interval)))


@dataclass
class ForecastResult:
    name: str
    steps: int                     # forecast steps done in total (restarts included)
    simulated_ps: float
    mean_temperature: float        # K, over the logged steps
    std_temperature: float
    degrees_of_freedom: int
    out_dir: str
    stopped: Optional[str] = None  # why the structure stopped early
    seconds: float = 0.0           # wall time of the whole (batched) run

    @property
    def ns_per_day(self) -> float:
        """Simulated time of this structure per day of wall time (the batch's other structures ran alongside)."""
        return self.simulated_ps * 1e-3 / max(self.seconds, 1e-9) * 86400


@dataclass
class _State:
    name: str
    out: Path
    pos: torch.Tensor       # (n,3) Å
    vel: torch.Tensor       # (n,3) Å/fs
    numbers: torch.Tensor   # (n,)
    masses: torch.Tensor    # (n,) amu
    cell: torch.Tensor      # (3,3) Å
    pbc: torch.Tensor       # (3,) bool
    dof: int
    first: int = 0
    graph: Optional[tuple] = None  # (edge_index, cell_shifts) of the current positions at the model's cutoff
    temperatures: deque = field(default_factory=deque)
    logged: list = field(default_factory=list)
    stopped: Optional[str] = None
    log: object = None

    def atoms(self, step: int, interval: float) -> Atoms:
        atoms = Atoms(numbers=self.numbers.numpy(), positions=self.pos.numpy(), cell=self.cell.numpy(),
                      pbc=self.pbc.numpy())
        atoms.set_masses(self.masses.numpy())
        atoms.set_velocities(self.vel.numpy() / units.fs)  # Å/fs -> Å per ASE time unit
        atoms.info.update(time_fs=step * interval, forecast_step=int(step))
        return atoms

    def temperature(self) -> float:
        return 2 * self.kinetic() / (self.dof * units.kB)

    def kinetic(self) -> float:
        return float(0.5 * (self.masses[:, None] * self.vel ** 2).sum()) * KINETIC


def degrees_of_freedom(atoms: Atoms, angular: bool) -> int:
    """3N less the total momentum's 3, less 3 for an isolated molecule whose angular momentum is kept
    (2 if it is linear; 0 for one atom)."""
    n = len(atoms)
    rotation = 0
    if angular and not atoms.pbc.any() and n > 1:
        centred = atoms.positions - atoms.get_center_of_mass()
        rotation = 2 if np.linalg.matrix_rank(centred, tol=1e-6) < 2 else 3
    return max(1, 3 * n - 3 - rotation)


def csvr_factor(kinetic: float, target: float, dof: int, interval: float, tau: float,
                rng: np.random.Generator) -> float:
    """The factor on the (centre-of-mass-free) velocities of one CSVR step of length ``interval``
    (fs) with time constant ``tau`` (fs): kinetic energy ``kinetic`` -> the stochastic update towards
    ``target`` = dof k T / 2 (Bussi et al. 2007, eq. A7)."""
    if kinetic <= 0:
        return 1.0
    c = np.exp(-interval / tau) if tau > 0 else 0.0
    r1 = rng.standard_normal()
    rest = rng.chisquare(dof - 1) if dof > 1 else 0.0
    new = (kinetic * c + target * (1 - c) * (r1 * r1 + rest) / dof
           + 2 * r1 * np.sqrt(c * (1 - c) * kinetic * target / dof))
    return float(np.sqrt(max(new, 0.0) / kinetic))


def initial_velocities(atoms: Atoms, temperature: float, seed: int, angular: bool) -> np.ndarray:
    """(n,3) Å/fs: the structure's own momenta if it has any, else Maxwell-Boltzmann at
    ``temperature`` K with no total momentum (and no rotation for a molecule whose angular momentum
    the model keeps)."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    if "momenta" not in atoms.arrays or not np.any(atoms.get_momenta()):
        atoms = atoms.copy()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        if angular and not atoms.pbc.any():
            ZeroRotation(atoms)
    return atoms.get_velocities() * units.fs


def _wrap(pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    if not bool(pbc.any()):
        return pos
    frac = pos @ torch.linalg.inv(cell)
    frac = torch.where(pbc, frac - torch.floor(frac), frac)
    return frac @ cell


def _write_restart(path: Path, atoms: Atoms) -> None:
    import ase.io

    tmp = f"{path}.tmp-{os.getpid()}"
    ase.io.write(tmp, atoms, format="extxyz")
    os.replace(tmp, path)


def run_forecast(structures: List[tuple], model, steps: int, temperature: Optional[float] = 300.0,
                 tau: float = 100.0, out_dir="forecast", seed: int = 0, limits: Optional[ForecastLimits] = None,
                 trajectory_interval: int = 1, log_interval: int = 1, restart_interval: int = 100,
                 restart: bool = False, progress: bool = True, device: str = "cpu") -> List[ForecastResult]:
    """Roll ``model`` (a Forecaster, eager or scripted) forward from ``structures`` [(name, Atoms)]
    for ``steps`` forecast steps in total (a restart counts the steps before it); ``temperature`` K
    (None: no thermostat), ``tau`` fs. With ``restart`` the structures are restart files
    (their forecast_step and momenta). Returns one ForecastResult per structure."""
    from mlip.progress import progress as tqdm

    limits = limits or ForecastLimits()
    interval = float(model.interval)
    window = limits.steps(interval) if interval > 0 else 1
    cutoff, max_neighbors = float(model.cutoff), getattr(model, "max_neighbors", None)
    if limits.min_distance >= cutoff:
        raise ValueError(f"min_distance {limits.min_distance} Å must be below the model's cutoff {cutoff} Å")
    if interval <= 0:
        raise ValueError("the model has no forecast interval (an untrained forecaster?)")
    dtype = model.displacement_scale.dtype
    angular = bool(getattr(model, "conserve_angular_momentum", False))
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    states: list[_State] = []
    for k, (name, atoms) in enumerate(structures):
        folder = out if len(structures) == 1 else out / f"{k}-{Path(str(name)).stem}"
        folder.mkdir(parents=True, exist_ok=True)
        first = int(atoms.info.get("forecast_step", 0)) if restart else 0
        if restart and "forecast_step" not in atoms.info:
            raise ValueError(f"{name}: not a restart file of mlip forecast (no forecast_step in its header)")
        vel = initial_velocities(atoms, temperature or 0.0, seed + k, angular)
        state = _State(str(name), folder, torch.tensor(atoms.positions, dtype=dtype), torch.tensor(vel, dtype=dtype),
                       torch.tensor(atoms.numbers), torch.tensor(atoms.get_masses(), dtype=dtype),
                       torch.tensor(np.asarray(atoms.cell), dtype=dtype), torch.tensor(atoms.pbc),
                       degrees_of_freedom(atoms, angular), first)
        one = torch.zeros(len(atoms), dtype=torch.long)
        state.vel = set_linear_momentum(state.masses, state.vel, torch.zeros(1, 3, dtype=dtype), one, 1)
        states.append(state)
    start_temperature = {id(s): s.temperature() for s in states}

    def target(state: _State) -> float:
        return float(temperature) if temperature else max(start_temperature[id(state)], 1e-6)

    for state in states:
        mode = "a" if restart and (state.out / "forecast.csv").exists() else "w"
        state.log = open(state.out / "forecast.csv", mode, newline="")
        if mode == "w":
            csv.writer(state.log).writerow(LOG_FIELDS)
            for stale in ("trajectory.extxyz", "last_good.extxyz"):
                (state.out / stale).unlink(missing_ok=True)

    def observe(state: _State) -> float:
        """The state's temperature, into the guard's sliding window."""
        t = state.temperature()
        state.temperatures.append(t)
        while len(state.temperatures) > window:
            state.temperatures.popleft()
        return t

    def record(state: _State, step: int, t: float) -> None:
        import ase.io

        if step % log_interval == 0:
            state.logged.append(t)
            csv.writer(state.log).writerow([step, f"{step * interval:.3f}", f"{t:.4f}", f"{state.kinetic():.8f}"])
            state.log.flush()
        if step % trajectory_interval == 0:
            ase.io.write(state.out / "trajectory.extxyz", state.atoms(step, interval), format="extxyz", append=True)
        if step % restart_interval == 0:
            _write_restart(state.out / "restart.extxyz", state.atoms(step, interval))

    def check(state: _State, step: int) -> Optional[str]:
        goal = target(state)
        now = state.temperatures[-1]
        if not np.isfinite(now) or now > 10 * goal:
            return f"step {step}: temperature {now:.1f} K, more than 10 x {goal:.0f} K"
        mean = float(np.mean(state.temperatures))
        if len(state.temperatures) >= window and not limits.low * goal <= mean <= limits.high * goal:
            return (f"step {step}: temperature {mean:.1f} K (mean of the last {len(state.temperatures)} steps) left "
                    f"[{limits.low * goal:.0f}, {limits.high * goal:.0f}] K")
        # the shortest distance from the graph the next forecast reads (the model's cutoff exceeds the limit)
        state.graph = radius_graph_pbc(state.pos, state.cell, state.pbc, cutoff, max_neighbors)
        if limits.min_distance > 0 and state.graph[0].shape[1] > 0:
            edge_index, shifts = state.graph
            d = edge_vectors(state.pos, state.cell, edge_index, shifts).norm(dim=-1)
            k = int(torch.argmin(d))
            if float(d[k]) < limits.min_distance:
                i, j = int(edge_index[0, k]), int(edge_index[1, k])
                return (f"step {step}: atoms {i} and {j} are {float(d[k]):.3f} Å apart, closer than the limit "
                        f"{limits.min_distance} Å")
        return None

    for state in states:
        t = observe(state)
        if not restart:
            record(state, 0, t)
    model = model.to(device)
    done = {id(s): s.first for s in states}
    start = time.perf_counter()
    bar = tqdm(total=steps, initial=min(s.first for s in states), desc="forecast", unit="step",
               disable=not progress)
    try:
        step = min(s.first for s in states)
        while step < steps:
            step += 1
            active = [s for s in states if s.stopped is None and s.first < step]
            if not active:
                break
            goods = {id(s): (s.pos.clone(), s.vel.clone()) for s in active}
            _forecast(model, active, cutoff, max_neighbors, device)
            for state in active:
                if temperature:
                    goal = 0.5 * state.dof * units.kB * float(temperature)
                    factor = csvr_factor(state.kinetic(), goal, state.dof, interval, tau, rng)
                    state.vel = state.vel * factor  # the momentum is zero: all of the velocity is thermal
                one = torch.zeros(state.pos.shape[0], dtype=torch.long)  # rounding's drift of the momentum removed
                state.vel = set_linear_momentum(state.masses, state.vel, state.vel.new_zeros(1, 3), one, 1)
                state.pos = _wrap(state.pos, state.cell, state.pbc)
                t = observe(state)
                problem = check(state, step)
                if problem is not None:
                    import ase.io

                    state.pos, state.vel = goods[id(state)]
                    state.graph = None
                    good = state.atoms(step - 1, interval)
                    ase.io.write(state.out / "last_good.extxyz", good, format="extxyz")
                    _write_restart(state.out / "restart.extxyz", good)
                    state.stopped = (f"{problem}; last good frame (step {step - 1}) in {state.out / 'last_good.extxyz'}, "
                                     f"restart from {state.out / 'restart.extxyz'}")
                    continue
                record(state, step, t)
                done[id(state)] = step
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(T=" ".join(f"{s.temperature():.0f}" for s in active) + " K")
        for state in states:
            if state.stopped is None:
                _write_restart(state.out / "restart.extxyz", state.atoms(done[id(state)], interval))
    finally:
        bar.close()
        for state in states:
            state.log.close()
            from mlip.simulate.plots import forecast_plot

            forecast_plot(state.out / "forecast.csv", state.out / "forecast.png", target=temperature,
                          dof=state.dof, title=state.name)
    seconds = time.perf_counter() - start
    results = []
    for state in states:
        logged = np.asarray(state.logged) if state.logged else np.asarray([state.temperature()])
        results.append(ForecastResult(state.name, done[id(state)], done[id(state)] * interval / 1000,
                                      float(logged.mean()), float(logged.std()), state.dof, str(state.out),
                                      state.stopped, seconds))
    return results


def _forecast(model, states: list, cutoff: float, max_neighbors, device: str) -> None:
    """One forecast of every state in ``states`` as one batch: positions and velocities advanced (each
    state's graph of its wrapped positions reused when the guards built it)."""
    positions, numbers, masses, velocities, cells, pbcs, edges, shifts, batch = [], [], [], [], [], [], [], [], []
    offset = 0
    for b, s in enumerate(states):
        if s.graph is None:
            s.pos = _wrap(s.pos, s.cell, s.pbc)
            s.graph = radius_graph_pbc(s.pos, s.cell, s.pbc, cutoff, max_neighbors)
        pos = s.pos
        edge_index, cell_shifts = s.graph
        positions.append(pos)
        numbers.append(s.numbers)
        masses.append(s.masses)
        velocities.append(s.vel)
        cells.append(s.cell)
        pbcs.append(s.pbc)
        edges.append(edge_index + offset)
        shifts.append(cell_shifts)
        batch.append(torch.full((pos.shape[0],), b, dtype=torch.long))
        offset += pos.shape[0]
    with torch.no_grad():
        out = model.compute(torch.cat(positions).to(device), torch.cat(numbers).to(device),
                            torch.cat(masses).to(device), torch.cat(velocities).to(device),
                            torch.stack(cells).to(device), torch.stack(pbcs).to(device), torch.cat(edges, 1).to(device),
                            torch.cat(shifts).to(device), torch.cat(batch).to(device), len(states))
    displacement, new_velocities = out["displacement"].cpu(), out["velocities"].cpu()
    start = 0
    for s in states:
        n = s.pos.shape[0]
        s.pos = s.pos + displacement[start:start + n]
        s.vel = new_velocities[start:start + n]
        s.graph = None
        start += n


"""MD throughput: ns/day and atom-steps/s of one model in every engine mlip runs in, against the
peers through ASE.

    python benchmarks/bench_md.py [--steps 10] [--molecule-steps 100] [--models facet:mp facet:small]
        [--lammps-models facet:small] [--peers sevenn mace] [--ranks 1 2] [--weak 2000 4000] [--record md]

Each model (random weights, float32, torch threads = cores) in:
  mlip md      mlip.simulate.run_md, NVE (what `mlip md` runs: logging, guards, restart files)
  ASE          ase.md.VelocityVerlet with the MLIPCalculator (the same model, no mlip md around it)
  torch-sim    torch_sim's NVE, 8 copies of the structure in one batch (mlip.integrations.torch_sim)
  LAMMPS       pair_style mlip (the TorchScript export, `mlip lammps-plugin`), fix nve, on 1 and 2 MPI
               ranks (strong scaling at the system's size; weak scaling at --weak sizes), for the
               --lammps-models: the plugin evaluates each rank's atoms with ghost atoms out to
               interaction hops x cutoff, 27 Å for Facet "mp" (5 x 5 Å), which around a 27 Å cell
               of 1000 atoms is some 30 000 atoms: more memory than a 24 GB machine has. Facet
               "small" (2 x 4 Å) fits.
and SevenNet-0 and MACE-MP-0 medium (random weights) with ase.md.VelocityVerlet in their own
virtual environments (benchmarks/bench_inference.py makes them). Systems: rattled diamond Si of
1000 atoms (time step 1 fs, ``--steps`` timed steps) and aspirin (21 atoms, 0.5 fs,
``--molecule-steps``). Each engine takes warm-up steps first; the figures are from the timed steps
only (LAMMPS: its "Loop time" of the second run; mlip md: the whole run, its files and plot
included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
TIMESTEP_FS = {"aspirin": 0.5}  # every other system: 1 fs
WARMUP = 3  # TorchScript (LAMMPS) optimises its graph over its first three calls


def ns_per_day(steps: int, seconds: float, timestep_fs: float) -> float:
    return steps * timestep_fs * 1e-6 / seconds * 86400


def structure(system: str):
    """Rattled diamond Si of ``system`` atoms (8 k^3, or 2000 = 5x5x10 and 4000 = 5x10x10 cubic cells)
    or aspirin from the bundled rMD17 sample."""
    import numpy as np
    from ase import Atoms
    from ase.build import bulk

    if system == "aspirin":
        z = np.load(ROOT / "data" / "rmd17" / "rmd17_aspirin_train_01.npz")
        return Atoms(numbers=z["nuclear_charges"], positions=z["coords"][0])
    n = int(system)
    reps = {2000: (5, 5, 10), 4000: (5, 10, 10)}.get(n) or (round((n / 8) ** (1 / 3)),) * 3
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * reps
    if len(atoms) != n:
        raise SystemExit(f"no Si cell of {n} atoms here")
    atoms.rattle(0.05, seed=0)
    return atoms


def with_velocities(atoms, seed: int = 0):
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    MaxwellBoltzmannDistribution(atoms, temperature_K=300.0, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def our_model(spec: str):
    import torch

    from mlip.models import build

    name, preset = spec.split(":")
    torch.manual_seed(0)
    return build(name, preset=preset).float().eval()


def timed_ase(atoms, calculator, steps: int, timestep_fs: float) -> float:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms.calc = calculator
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    dynamics.run(WARMUP)
    start = time.perf_counter()
    dynamics.run(steps)
    return time.perf_counter() - start


def run_ours(spec: str, system: str, engine: str, steps: int) -> dict:
    """One of our engines in this process: seconds for ``steps`` steps of ``system``."""
    import torch

    from mlip.calculator import MLIPCalculator

    torch.set_num_threads(os.cpu_count() or 1)
    dt = TIMESTEP_FS.get(system, 1.0)
    atoms = with_velocities(structure(system))
    model = our_model(spec)
    copies = 1
    if engine == "ASE":
        seconds = timed_ase(atoms, MLIPCalculator(model), steps, dt)
    elif engine == "mlip md":
        from mlip.simulate.md import run_md

        calculator = MLIPCalculator(model)
        with tempfile.TemporaryDirectory() as out:
            run_md(atoms.copy(), calculator, ensemble="nve", timestep=dt, steps=WARMUP, out_dir=out, progress=False,
                   init_velocities=False)
            start = time.perf_counter()
            run_md(atoms, calculator, ensemble="nve", timestep=dt, steps=steps, out_dir=out, progress=False,
                   init_velocities=False, trajectory_interval=steps, log_interval=steps, restart_interval=steps)
            seconds = time.perf_counter() - start
    elif engine == "torch-sim":
        import torch_sim as ts

        from mlip.integrations.torch_sim import MLIPModel

        copies = 8
        systems = [with_velocities(structure(system), seed=k) for k in range(copies)]
        for k, a in enumerate(systems):
            a.rattle(0.01, seed=k + 1)
        state = ts.io.atoms_to_state(systems, torch.device("cpu"), torch.float32)
        kT = torch.tensor(300.0 * ts.units.MetalUnits.temperature)
        init, update = ts.nve(model=MLIPModel(model, device="cpu", dtype=torch.float32),
                              dt=torch.tensor(dt * 1e-3), kT=kT, seed=0)  # metal units: ps
        state = init(state)
        for _ in range(WARMUP):
            state = update(state)
        start = time.perf_counter()
        for _ in range(steps):
            state = update(state)
        seconds = time.perf_counter() - start
    else:
        raise ValueError(engine)
    return {"seconds": seconds, "atoms": len(atoms) * copies, "steps": steps, "timestep_fs": dt}


def run_peer(peer: str, system: str, steps: int) -> dict:
    """A peer's ASE MD in this process (its own virtual environment)."""
    import torch
    from bench_inference import calculator

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_default_dtype(torch.float32)
    dt = TIMESTEP_FS.get(system, 1.0)
    atoms = with_velocities(structure(system))
    seconds = timed_ase(atoms, calculator(peer, "cpu"), steps, dt)
    return {"seconds": seconds, "atoms": len(atoms), "steps": steps, "timestep_fs": dt}


def run_lammps(spec: str, system: str, ranks: int, steps: int, work: Path) -> dict:
    """pair_style mlip on ``ranks`` MPI ranks: LAMMPS's own loop time for ``steps`` NVE steps."""
    import ase.io

    from mlip.export import export
    from mlip.integrations.lammps import build_plugin, lammps_executable, runtime_environment

    dt = TIMESTEP_FS.get(system, 1.0)
    folder = work / f"lammps-{spec.replace(':', '-')}-{system}-{ranks}"
    folder.mkdir(parents=True, exist_ok=True)
    model_path = work / f"{spec.replace(':', '-')}.pt"
    if not model_path.exists():
        export(our_model(spec), model_path, "torchscript")
    atoms = structure(system)
    periodic = system != "aspirin"
    if not periodic:  # a molecule: centred in a box of fixed, non-periodic walls
        atoms.set_cell([40.0, 40.0, 40.0])
        atoms.center()
    species = sorted(set(atoms.get_chemical_symbols()))
    ase.io.write(folder / "data.lmp", atoms, format="lammps-data", specorder=species, masses=True)
    (folder / "in.lmp").write_text(f"""units metal
atom_style atomic
boundary {'p p p' if periodic else 'f f f'}
atom_modify map yes
read_data data.lmp
plugin load {build_plugin()}
pair_style mlip
pair_coeff * * {model_path} {' '.join(species)}
velocity all create 300.0 1 mom yes rot yes
timestep {dt * 1e-3}
fix integrate all nve
thermo {steps}
run {WARMUP}
run {steps}
""")
    command = [str(lammps_executable()), "-in", "in.lmp", "-log", "log.lammps"]
    if ranks > 1:
        command = [str(Path(sys.prefix) / "bin" / "mpirun"), "-np", str(ranks)] + command
    env = runtime_environment(dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // ranks))))
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env)
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", run.stdout)
    if run.returncode != 0 or len(loops) < 2:
        raise RuntimeError(f"LAMMPS on {ranks} ranks failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return {"seconds": float(loops[-1][0]), "atoms": len(atoms), "steps": steps, "timestep_fs": dt}


def in_subprocess(python: str, args: list) -> dict:
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONWARNINGS="ignore")
    run = subprocess.run([python, __file__, "--worker", *args], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed:\n{run.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["facet:mp", "facet:small"])
    parser.add_argument("--lammps-models", nargs="*", default=["facet:small"],
                        help="models that also run in LAMMPS on the Si systems (aspirin: every model)")
    parser.add_argument("--systems", nargs="+", default=["1000", "aspirin"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps of the Si systems")
    parser.add_argument("--molecule-steps", type=int, default=100, help="timed steps of aspirin")
    parser.add_argument("--peers", nargs="*", default=["sevenn", "mace"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--weak", nargs="*", default=["2000", "4000"], help="Si sizes for LAMMPS's weak scaling")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "peer":
            print(json.dumps(run_peer(rest[0], rest[1], int(rest[2]))))
        else:
            print(json.dumps(run_ours(rest[0], rest[1], rest[2], int(rest[3]))))
        return
    from bench_inference import label, peer_python

    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench_md-"))

    def add(system, engine, ranks, result):
        rate = result["atoms"] * result["steps"] / result["seconds"]
        nsd = ns_per_day(result["steps"], result["seconds"], result["timestep_fs"])
        rows.append((system, engine, ranks, result["atoms"], rate, nsd))
        print(f"  {system:>8} {engine:<28} {ranks:>5} {result['atoms']:>6} atoms {rate:9.1f} atom-steps/s "
              f"{nsd:8.4f} ns/day", flush=True)

    for system in args.systems:
        steps = args.molecule_steps if system == "aspirin" else args.steps
        for spec in args.models:
            ours = f"mlip {spec.replace(':', '-')}"
            for engine in ("mlip md", "ASE", "torch-sim"):
                add(system, f"{ours} {engine}", "-", in_subprocess(sys.executable, ["ours", spec, system, engine,
                                                                                    str(steps)]))
            if spec in args.lammps_models or system == "aspirin":
                for ranks in args.ranks if system != "aspirin" else [1]:
                    add(system, f"{ours} LAMMPS", ranks, run_lammps(spec, system, ranks, steps, work))
        for peer in args.peers:
            try:
                add(system, f"{label(peer)} ASE", "-", in_subprocess(peer_python(peer), ["peer", peer, system,
                                                                                       str(steps)]))
            except RuntimeError as error:
                print(f"  {system:>8} {label(peer)}: FAILED {str(error)[-400:]}", flush=True)
    for spec in args.lammps_models:
        for system in args.weak:
            for ranks in args.ranks:
                add(system, f"mlip {spec.replace(':', '-')} LAMMPS", ranks,
                    run_lammps(spec, system, ranks, args.steps, work))
    print(f"\nMD throughput, {args.steps} timed NVE steps of Si ({args.molecule_steps} of aspirin) after {WARMUP} "
          f"warm-up, float32, "
          f"{os.cpu_count()} cores (torch threads = cores; LAMMPS: cores / ranks threads per rank)")
    print(f"{'system':<9}{'engine':<32}{'ranks':>6}{'atoms':>7}{'atom-steps/s':>14}{'ns/day':>10}")
    for system, engine, ranks, atoms, rate, nsd in rows:
        name = f"Si {system}" if system.isdigit() else system
        print(f"{name:<9}{engine:<32}{str(ranks):>6}{atoms:>7}{rate:>14.1f}{nsd:>10.4f}")


if __name__ == "__main__":
    recorded(main)

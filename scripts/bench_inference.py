"""Inference speed through the ASE calculator: mlip Facet "mp" against SevenNet-0 and MACE.

    python scripts/bench_inference.py [--sizes 64 216 512 1000] [--steps 3] [--peers sevenn mace]

Each step moves the atoms slightly and asks the calculator for energy, forces and stress (forces
only for the molecule), float32, torch threads = cores. Systems: rattled Si diamond of 64, 216, 512
and 1000 atoms, and aspirin (21 atoms, from data/rmd17). Peers run in their own virtual
environments (.bench-venvs/<peer>, created on first use with the CPU torch pin):
  sevenn   SevenNet-0, the pretrained checkpoint shipped in the sevenn wheel
  mace     MACE with the MACE-MP-0 "medium" hyperparameters (128x0e+128x1o, max_ell 3,
           correlation 3, 2 interactions, r_max 6 Å), random weights (timing only)
Every (model, system) runs in a fresh process, so its peak resident memory is its own. Prints a
table of atom-steps/s, ratios ours/peer and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench-venvs"
PEER_PACKAGES = {"sevenn": "sevenn", "mace": "mace-torch"}
LABELS = {"ours": "mlip facet-mp", "sevenn": "SevenNet-0", "mace": "MACE-MP-0 medium (random)"}


def structure(system: str):
    import numpy as np
    from ase.build import bulk

    if system == "aspirin":
        z = np.load(ROOT / "data" / "rmd17" / "rmd17_aspirin_train_01.npz")
        from ase import Atoms

        return Atoms(numbers=z["nuclear_charges"], positions=z["coords"][0])
    n = int(system)
    reps = round((n / 8) ** (1 / 3))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (reps, reps, reps)
    assert len(atoms) == n, f"no cubic Si supercell of {n} atoms"
    atoms.rattle(0.05, seed=0)
    return atoms


def calculator(model: str):
    import torch

    if model == "ours":
        from mlip.calculator import MLIPCalculator
        from mlip.models import build

        torch.manual_seed(0)
        return MLIPCalculator(build("facet", preset="mp").float())
    if model == "sevenn":
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator("7net-0", device="cpu")
    if model == "mace":
        import tempfile

        import numpy as np
        from e3nn import o3
        from mace import modules
        from mace.calculators import MACECalculator

        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        net = modules.ScaleShiftMACE(
            r_max=6.0, num_bessel=10, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=89,
            hidden_irreps=o3.Irreps("128x0e+128x1o"), MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(89), avg_num_neighbors=61.96, atomic_numbers=list(range(1, 90)),
            correlation=3, gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
            atomic_inter_scale=1.0, atomic_inter_shift=0.0)
        path = os.path.join(tempfile.mkdtemp(), "mace_mp0_medium_random.model")
        torch.save(net, path)
        return MACECalculator(model_paths=path, device="cpu", default_dtype="float32")
    raise ValueError(model)


def worker(model: str, system: str, steps: int) -> dict:
    """In a fresh process: time ``steps`` energy+forces(+stress) evaluations; report JSON."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_default_dtype(torch.float32)
    atoms = structure(system)
    atoms.calc = calculator(model)
    periodic = bool(atoms.pbc.all())
    rng = np.random.default_rng(1)

    def step():
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_potential_energy()
        atoms.get_forces()
        if periodic:
            atoms.get_stress()

    step()  # warm-up: graph building, lazy initialisation
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"model": model, "system": system, "atoms": len(atoms), "seconds_per_step": seconds,
            "atom_steps_per_s": len(atoms) / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def peer_python(peer: str) -> str:
    venv = VENVS / peer
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {PEER_PACKAGES[peer]} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements" / "cpu-constraints.txt"),
                        "torch==2.13.0", PEER_PACKAGES[peer]], check=True)
    return str(python)


def run(python: str, model: str, system: str, steps: int) -> dict:
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([python, __file__, "--worker", model, system, str(steps)], capture_output=True,
                            text=True, env=env)
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{model} on {system} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["64", "216", "512", "1000"])
    parser.add_argument("--molecule", default="aspirin")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--peers", nargs="*", default=["sevenn", "mace"])
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return
    pythons = {"ours": sys.executable, **{p: peer_python(p) for p in args.peers}}
    systems = list(args.sizes) + ([args.molecule] if args.molecule else [])
    results = {}
    for system in systems:
        for model, python in pythons.items():
            r = run(python, model, system, args.steps)
            results[(model, system)] = r
            print(f"  {LABELS[model]:<28} {system:>8}: {r['atom_steps_per_s']:9.1f} atom-steps/s, "
                  f"{r['seconds_per_step']:.3f} s/step, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    threads = results[("ours", systems[0])]["threads"]
    print(f"\natom-steps/s (energy + forces + stress via the ASE calculator), float32, {threads} torch threads")
    head = f"{'system':<14}{'atoms':>6}" + "".join(f"{LABELS[m][:14]:>16}" for m in pythons)
    head += "".join(f"{'ours/' + LABELS[p][:9]:>16}" for p in args.peers)
    head += "".join(f"{'MB ' + LABELS[m][:10]:>15}" for m in pythons)
    print(head)
    for system in systems:
        row = results[("ours", system)]
        name = f"Si {system}" if system.isdigit() else system
        line = f"{name:<14}{row['atoms']:>6}"
        line += "".join(f"{results[(m, system)]['atom_steps_per_s']:>16.1f}" for m in pythons)
        line += "".join(f"{row['atom_steps_per_s'] / results[(p, system)]['atom_steps_per_s']:>16.2f}"
                        for p in args.peers)
        line += "".join(f"{results[(m, system)]['peak_rss_mb']:>15.0f}" for m in pythons)
        print(line)


if __name__ == "__main__":
    main()

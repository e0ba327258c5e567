"""Inference speed through the ASE calculator: mlip Facet "mp" against SevenNet-0 and MACE.

    python benchmarks/bench_inference.py [--sizes 64 216 512 1000] [--steps 3] [--min-seconds 3] [--rounds 3]
        [--peers sevenn mace]
        [--device cuda] [--ours facet:mp facet:mp:torchscript escn:oc20] [--peer-python python3 --peer-path mace=DIR]

On CUDA (``--device cuda``) the peers also run with the acceleration their packages offer,
cuEquivariance (``sevenn-cueq``, ``mace-cueq``: add them to --peers), and mlip's kernels run as
Triton. ``--peer-python`` runs the peers with one given interpreter instead of the .bench-venvs (a
machine without network, scripts/gpu_check.sh); ``--peer-path PEER=DIR`` puts DIR first on that
peer's PYTHONPATH (MACE's pinned e3nn).

Each step moves the atoms slightly and asks the calculator for energy, forces and stress (forces
only for the molecule), float32, torch threads = cores. A run times ``--steps`` steps after three
warm-up steps and goes on until ``--min-seconds`` have passed, so a fast model on a small system is
timed over as long a stretch as a slow one (five 0.1 s steps are at the mercy of one slow spell).
Systems: rattled Si diamond of 64, 216, 512 and 1000 atoms, and aspirin (21 atoms, from data/rmd17).
Peers run in their own virtual environments (.bench-venvs/<peer>, created on first use with the CPU
torch pin):
  sevenn   SevenNet-0, the pretrained checkpoint shipped in the sevenn wheel
  mace     MACE with the MACE-MP-0 "medium" hyperparameters (128x0e+128x1o, max_ell 3,
           correlation 3, 2 interactions, r_max 6 Å), random weights (timing only)
Every (model, system) runs in a fresh process, so its peak resident memory is its own. mlip's models
run ``--rounds`` times per system, before, between and after the peers' runs (one each: they take
minutes at 1000 atoms), and the table takes the median of those runs, so a slow spell of the
machine does not decide the ratio (on the 2-core VM the same run varies by up to 25%). Prints a
table of atom-steps/s, ratios ours/peer and peak memory; "facet:mp:torchscript" is the same model
exported to TorchScript (`mlip export`) and loaded by the calculator, the file LAMMPS runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from record import recorded

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench-venvs"
PEER_PACKAGES = {"sevenn": "sevenn", "mace": "mace-torch"}
PEER_LABELS = {"sevenn": "SevenNet-0", "mace": "MACE-MP-0 medium (random)", "sevenn-cueq": "SevenNet-0 cueq",
               "mace-cueq": "MACE-MP-0 medium cueq"}


def label(model: str) -> str:
    return PEER_LABELS.get(model) or "mlip " + model.replace(":", "-")


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


def calculator(model: str, device: str):
    import torch

    if model not in PEER_LABELS:  # one of ours, "name:preset" or "name:preset:torchscript" (its export)
        import tempfile

        from mlip.calculator import MLIPCalculator
        from mlip.export import export
        from mlip.models import build

        name, preset, *exported = model.split(":")
        torch.manual_seed(0)
        potential = build(name, preset=preset).float()
        if exported:
            path = export(potential, os.path.join(tempfile.mkdtemp(), "model.pt"), exported[0])
            return MLIPCalculator(path, device=device)
        return MLIPCalculator(potential, device=device)
    cueq = model.endswith("-cueq")
    if model.startswith("sevenn"):
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator("7net-0", device=device, **({"enable_cueq": True} if cueq else {}))
    if model.startswith("mace"):
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
        return MACECalculator(model_paths=path, device=device, default_dtype="float32",
                              **({"enable_cueq": True} if cueq else {}))
    raise ValueError(model)


def worker(model: str, system: str, steps: int, min_seconds: float, device: str) -> dict:
    """In a fresh process: time at least ``steps`` energy+forces(+stress) evaluations and at least
    ``min_seconds``; report JSON."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_default_dtype(torch.float32)
    atoms = structure(system)
    atoms.calc = calculator(model, device)
    periodic = bool(atoms.pbc.all())
    rng = np.random.default_rng(1)

    def step():
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_potential_energy()
        atoms.get_forces()
        if periodic:
            atoms.get_stress()

    for _ in range(3):  # warm-up: lazy initialisation, kernel compilation, TorchScript's profiling runs (three)
        step()
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, done = time.perf_counter(), 0
    while done < steps or time.perf_counter() - start < min_seconds:
        step()  # the calculators return host arrays: each step ends synchronised
        done += 1
    seconds = (time.perf_counter() - start) / done
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "system": system, "atoms": len(atoms), "steps": done, "seconds_per_step": seconds,
            "atom_steps_per_s": len(atoms) / seconds, "peak_mb": peak, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if cuda else None}


def peer_python(peer: str) -> str:
    venv = VENVS / peer
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {PEER_PACKAGES[peer]} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements" / "cpu-constraints.txt"),
                        "torch==2.13.0", PEER_PACKAGES[peer]], check=True)
    return str(python)


def run(python: str, model: str, system: str, steps: int, min_seconds: float, device: str,
        path: str | None = None) -> dict:
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONWARNINGS="ignore")
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([python, __file__, "--worker", model, system, str(steps), str(min_seconds), device],
                            capture_output=True, text=True, env=env)
    lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{model} on {system} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def schedule(ours: list, peers: list, rounds: int) -> list:
    """The order of one system's runs: each of ours ``rounds`` times, the peers once, in the middle."""
    order = []
    for i in range(max(rounds, 1)):
        order += list(ours)
        if i == (max(rounds, 1) - 1) // 2:
            order += list(peers)
    return order


def median_run(runs: list) -> dict:
    """The run with the median speed (the lower middle one of an even number); peak memory the largest."""
    ranked = sorted(runs, key=lambda r: r["atom_steps_per_s"])
    return dict(ranked[(len(ranked) - 1) // 2], peak_mb=max(r["peak_mb"] for r in runs), runs=len(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["64", "216", "512", "1000"])
    parser.add_argument("--molecule", default="aspirin")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run, at least")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per run, at least")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mlip model per system (median taken)")
    parser.add_argument("--peers", nargs="*", default=["sevenn", "mace"],
                        help="sevenn, mace, and on CUDA sevenn-cueq, mace-cueq")
    parser.add_argument("--ours", nargs="+", default=["facet:mp", "facet:mp:torchscript"],
                        help="mlip models as name:preset, or name:preset:torchscript for its TorchScript export")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--peer-python", help="run the peers with this interpreter (no .bench-venvs)")
    parser.add_argument("--peer-path", nargs="*", default=[], help="PEER=DIR: DIR first on that peer's PYTHONPATH")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, system, steps, min_seconds, device = args.worker
        print(json.dumps(worker(model, system, int(steps), float(min_seconds), device)))
        return
    paths = dict(item.split("=", 1) for item in args.peer_path)
    pythons = {m: sys.executable for m in args.ours}
    pythons.update({p: args.peer_python or peer_python(p.removesuffix("-cueq")) for p in args.peers})
    systems = list(args.sizes) + ([args.molecule] if args.molecule else [])
    results, runs = {}, {}
    for system in systems:
        for model in schedule(args.ours, args.peers, args.rounds):
            try:
                r = run(pythons[model], model, system, args.steps, args.min_seconds, args.device,
                        paths.get(model.removesuffix("-cueq")))
            except RuntimeError as error:  # a peer that does not install or run here: say so, go on
                print(f"  {label(model):<28} {system:>8}: FAILED {str(error)[-600:]}", flush=True)
                continue
            runs.setdefault((model, system), []).append(r)
            results[(model, system)] = median_run(runs[(model, system)])
            print(f"  {label(model):<28} {system:>8}: {r['atom_steps_per_s']:9.1f} atom-steps/s, "
                  f"{r['seconds_per_step']:.4f} s/step, peak {r['peak_mb']:.0f} MB", flush=True)
    first = results.get((args.ours[0], systems[0]), {})
    where = f"on {first.get('gpu')}" if args.device == "cuda" else f"{first.get('threads')} torch threads"
    memory = "peak GPU MB" if args.device == "cuda" else "peak RSS MB"
    print(f"\natom-steps/s (energy + forces + stress via the ASE calculator), float32, {where}; mlip's: the "
          f"median of {args.rounds} runs; ratios {label(args.ours[0])} / peer; {memory}")
    head = f"{'system':<14}{'atoms':>6}" + "".join(f"{label(m)[:15]:>17}" for m in pythons)
    head += "".join(f"{'ours/' + label(p)[:11]:>18}" for p in args.peers)
    head += "".join(f"{'MB ' + label(m)[:11]:>16}" for m in pythons)
    print(head)

    def cell(model, system, key, fmt):
        r = results.get((model, system))
        return format(r[key], fmt) if r else "-"

    for system in systems:
        ours = results.get((args.ours[0], system))
        name = f"Si {system}" if system.isdigit() else system
        line = f"{name:<14}{(ours or {}).get('atoms', '-'):>6}"
        line += "".join(f"{cell(m, system, 'atom_steps_per_s', '.1f'):>17}" for m in pythons)
        for p in args.peers:
            peer = results.get((p, system))
            line += f"{ours['atom_steps_per_s'] / peer['atom_steps_per_s']:>18.2f}" if ours and peer else f"{'-':>18}"
        line += "".join(f"{cell(m, system, 'peak_mb', '.0f'):>16}" for m in pythons)
        print(line)
    for model in args.ours:
        base = model.rsplit(":", 1)[0]
        if model.count(":") == 2 and base in args.ours:  # an export beside its eager model
            speeds = [f"{system} {results[(model, system)]['atom_steps_per_s'] / results[(base, system)]['atom_steps_per_s']:.2f}"
                      for system in systems if (model, system) in results and (base, system) in results]
            print(f"{label(model)} / {label(base)} (export against eager): " + ", ".join(speeds))


if __name__ == "__main__":
    recorded(main)

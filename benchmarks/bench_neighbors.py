"""Time mlip's neighbour lists against ase.neighborlist.neighbor_list on 1k, 10k and 100k atoms.

    python benchmarks/bench_neighbors.py [--sizes 1000 10000 100000] [--cutoff 5] [--repeats 3]

Systems: rattled Si diamond supercells (periodic) and, for the molecule column, the same atoms
without periodic boundaries. Prints seconds per call and the ratio ase/mlip (higher = mlip
faster); also checks that both give the same number of pairs. On a CUDA machine the GPU paths
are timed as well: vesin on the device (what ``auto`` runs for CUDA tensors) and mlip's all-pairs
torch search (the fallback, up to 4096 atoms), each checked against ase's pair count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from mlip.graph import radius_graph_pbc
from mlip.graph.build import TORCH_MAX_ATOMS

from record import recorded


def supercell(n_atoms: int, seed: int = 0):
    reps = max(1, round((n_atoms / 8) ** (1 / 3)))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (reps, reps, reps)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cutoff {args.cutoff} Å, "
          f"best of {args.repeats}; device: {torch.cuda.get_device_name() if cuda else 'CPU only'}")
    header = f"{'system':<12}{'atoms':>8}{'pairs':>11}{'ase s':>10}{'mlip s':>10}{'ase/mlip':>10}"
    if cuda:
        header += f"{'vesin-cuda s':>14}{'ase/vesin-cuda':>16}{'torch-cuda s':>14}{'ase/torch-cuda':>16}"
    print(header)
    for n in args.sizes:
        atoms = supercell(n)
        for label, pbc in (("crystal", True), ("molecule", False)):
            atoms.pbc = pbc
            pos = torch.tensor(atoms.positions)
            cell = torch.tensor(atoms.cell.array)
            pbc_t = torch.tensor(atoms.pbc)
            t_ase, (i, _j, _s) = best_time(lambda: neighbor_list("ijS", atoms, args.cutoff), args.repeats)
            t_ours, (edge_index, _) = best_time(lambda: radius_graph_pbc(pos, cell, pbc_t, args.cutoff), args.repeats)
            if edge_index.shape[1] != len(i):
                raise SystemExit(f"pair counts differ: ase {len(i)}, mlip {edge_index.shape[1]}")
            row = f"{label:<12}{len(atoms):>8}{len(i):>11}{t_ase:>10.4f}{t_ours:>10.4f}{t_ase / t_ours:>10.1f}"
            if cuda:
                args_cuda = (pos.cuda(), cell.cuda(), pbc_t.cuda())
                for backend in ("vesin", "torch"):
                    if backend == "torch" and len(atoms) > TORCH_MAX_ATOMS:
                        row += f"{'-':>14}{'-':>16}"
                        continue
                    radius_graph_pbc(*args_cuda, args.cutoff, backend=backend)  # warm-up
                    t_gpu, (ei, _) = best_time(lambda: radius_graph_pbc(*args_cuda, args.cutoff, backend=backend),
                                               args.repeats)
                    if ei.shape[1] != len(i) or ei.device.type != "cuda":
                        raise SystemExit(f"pair counts differ: ase {len(i)}, {backend}-cuda {ei.shape[1]}")
                    row += f"{t_gpu:>14.4f}{t_ase / t_gpu:>16.1f}"
            print(row, flush=True)


if __name__ == "__main__":
    recorded(main)

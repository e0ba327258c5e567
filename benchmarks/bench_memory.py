"""Peak memory per atom of Facet, eSCN, EScAIP and EquiformerV2 at comparable parameter counts, forward + forces.

    python benchmarks/bench_memory.py [--sizes 216 512 1000] [--dtype float32]

The same crystal for all (rattled diamond Si supercells), the same cutoff (5 Å), float32, eval mode,
energy and forces by autograd (no stress). Every (model, size) runs in a fresh process: it builds
the model and the graph, resets the kernel's peak-RSS counter (/proc/self/clear_refs), runs one
forward + backward, and reads the peak (VmHWM) against the resident size just before (VmRSS).
Memory per atom is the slope of that increase over the sizes (MB per 1000 atoms), so fixed costs
(weights, allocator pools) drop out; the increase at the largest size is printed too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from record import recorded

ROOT = Path(__file__).resolve().parents[1]

# about 0.8 M parameters each, cutoff 5 Å
MODELS = {
    "facet": dict(preset="mp"),  # lmax 2, 96 channels, 5 layers (SevenNet-0-sized)
    "escn": dict(cutoff=5.0, lmax=4, mmax=2, channels=24, num_layers=4, edge_hidden=64, avg_num_neighbors=28.0),
    "escaip": dict(cutoff=5.0, hidden=88, num_layers=4, heads=8, max_neighbors=30, avg_num_neighbors=28.0),
    "equiformer_v2": dict(cutoff=5.0, lmax=4, mmax=2, channels=24, num_layers=4, hidden=24, heads=4, alpha_channels=8,
                          value_channels=6, ffn_hidden=48, edge_hidden=48, avg_num_neighbors=28.0),
}


def status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(name: str, atoms: int, dtype: str) -> dict:
    import torch
    from ase.build import bulk

    from mlip.data import AtomicData
    from mlip.graph import build_graph
    from mlip.models import build

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build(name, **MODELS[name]).to(getattr(torch, dtype)).eval()
    reps = round((atoms / 8) ** (1 / 3))
    crystal = bulk("Si", "diamond", a=5.43, cubic=True) * (reps, reps, reps)
    crystal.rattle(0.05, seed=0)
    data = build_graph(AtomicData.from_ase(crystal), model.cutoff, model.max_neighbors)
    model(data, compute_stress=False)  # warm-up: lazy buffers, allocator pools
    before = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident size to the current one
    out = model(data, compute_stress=False)
    assert torch.isfinite(out["forces"]).all()
    peak = status_kb("VmHWM")
    return {"model": name, "atoms": len(crystal), "edges": int(data.edge_index.shape[1]),
            "parameters": sum(p.numel() for p in model.parameters()), "before_mb": before / 1024,
            "peak_mb": peak / 1024, "increase_mb": (peak - before) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[216, 512, 1000])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.dtype)))
        return
    rows = {}
    for name in args.models:
        for size in args.sizes:
            result = subprocess.run([sys.executable, __file__, "--worker", name, str(size), "--dtype", args.dtype],
                                    capture_output=True, text=True, cwd=ROOT)
            if result.returncode != 0:
                raise RuntimeError(f"{name} at {size} atoms failed:\n{result.stderr[-2000:]}")
            rows.setdefault(name, []).append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"{name} {size} atoms: +{rows[name][-1]['increase_mb']:.0f} MB", flush=True)
    print(f"\nforward + forces, {args.dtype}, Si diamond, cutoff 5 Å; peak resident memory above the model and graph")
    print(f"{'model':<14}{'params':>10}{'edges/atom':>12}" + "".join(f"{f'MB @{s}':>10}" for s in args.sizes)
          + f"{'MB / 1000 atoms':>17}{'kB / atom':>11}")
    for name, results in rows.items():
        atoms = np.array([r["atoms"] for r in results], dtype=float)
        increase = np.array([r["increase_mb"] for r in results])
        slope = np.polyfit(atoms, increase, 1)[0] * 1000 if len(results) > 1 else increase[-1] / atoms[-1] * 1000
        print(f"{name:<14}{results[0]['parameters']:>10,}{results[-1]['edges'] / results[-1]['atoms']:>12.1f}"
              + "".join(f"{v:>10.0f}" for v in increase) + f"{slope:>17.1f}{slope * 1024 / 1000:>11.1f}")


if __name__ == "__main__":
    recorded(main)

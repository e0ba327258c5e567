"""Batched relaxation against ASE's one-by-one loop, same model, same optimiser, same machine.

    python benchmarks/bench_relax.py [CHECKPOINT] [--structures 64] [--optimizer FIRE]

CHECKPOINT defaults to runs/quickstart/latest/checkpoints/best.ckpt (made by the quickstart). The structures are rMD17 ethanol test_01 frames (every 10th), relaxed to fmax
0.01 eV/Å both ways; prints the wall times, the speed-up and the largest difference in energy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from record import recorded

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--structures", type=int, default=64)
    parser.add_argument("--optimizer", default="FIRE")
    parser.add_argument("--fmax", type=float, default=0.01)
    args = parser.parse_args()
    latest = ROOT / "runs" / "quickstart" / "latest" / "checkpoints" / "best.ckpt"
    checkpoint = args.checkpoint or (str(latest) if latest.exists() else None)
    if checkpoint is None:
        sys.exit("no checkpoint given and none under runs/quickstart/: run `bash scripts/quickstart.sh` first")

    from mlip import load
    from mlip.data import open_dataset
    from mlip.simulate import relax_batched, relax_one_by_one

    torch.set_num_threads(os.cpu_count() or 1)
    model = load(checkpoint)
    test = open_dataset(str(ROOT / "data/rmd17/rmd17_ethanol_test_01.npz"))
    structures = []
    for i in range(args.structures):
        atoms = test[10 * i].to_ase()
        atoms.calc = None
        structures.append((f"test_01:{10 * i}", atoms))
    options = dict(optimizer=args.optimizer, fmax=args.fmax, steps=2000, progress=False)
    start = time.perf_counter()
    single = relax_one_by_one(structures, model, **options)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    batched = relax_batched(structures, model, **options)
    t_batched = time.perf_counter() - start
    steps = [r.steps for r in single]
    de = max(abs(a.energy - b.energy) for a, b in zip(single, batched))
    print(f"{len(structures)} ethanol structures, {args.optimizer} to fmax {args.fmax} eV/Å, "
          f"{torch.get_num_threads()} threads, {model.dtype}; steps per structure: median {int(np.median(steps))}, "
          f"max {max(steps)}; all converged: {all(r.converged for r in single + batched)}")
    print(f"{'path':<28}{'wall s':>10}{'structures/s':>15}")
    print(f"{'one by one (ASE loop)':<28}{t_single:>10.1f}{len(structures) / t_single:>15.2f}")
    print(f"{'batched (one model call)':<28}{t_batched:>10.1f}{len(structures) / t_batched:>15.2f}")
    print(f"speed-up: {t_single / t_batched:.2f}x; largest energy difference {de:.2e} eV")


if __name__ == "__main__":
    recorded(main)

"""Does a model's force uncertainty rank its errors, and does it grow away from the training data?

    python benchmarks/bench_uncertainty.py MODEL [--structures 1000] [--out uncertainty_bench.png]

MODEL: anything mlip.load reads that gives an uncertainty (a committee file from
`mlip train experiment=quickstart ensemble=4`, or comma-separated model files). On rMD17 ethanol
test_01 (the quickstart's test split) it prints the Spearman rank correlation between each
structure's predicted force std (RMS over its atoms) and its actual force RMSE, then the mean
per-structure force std on structures far from the data against test_01's:
  - test_01 ethanol with one hydrogen pulled 1 Å further out along its bond,
  - test_01 ethanol compressed by 20% (positions scaled by 0.8 about the centroid),
  - 3BPA (another molecule, with nitrogen; data/extxyz/3bpa_train_300K.xyz).
A useful uncertainty ranks errors (Spearman well above 0) and grows away from the data (ratios well
above 1). For a one-model (last-layer) uncertainty it also times 32 structures with and without it. A box plot of the
per-structure std of every set goes to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from record import attach, recorded

ROOT = Path(__file__).resolve().parents[1]


def pulled_hydrogen(atoms, distance: float = 1.0):
    """A copy with its first hydrogen moved ``distance`` Å further from its nearest heavy atom."""
    atoms = atoms.copy()
    numbers, pos = atoms.get_atomic_numbers(), atoms.get_positions()
    h = int(np.flatnonzero(numbers == 1)[0])
    heavy = np.flatnonzero(numbers > 1)
    partner = heavy[np.argmin(np.linalg.norm(pos[heavy] - pos[h], axis=1))]
    bond = pos[h] - pos[partner]
    pos[h] += distance * bond / np.linalg.norm(bond)
    atoms.set_positions(pos)
    return atoms


def compressed(atoms, factor: float = 0.8):
    atoms = atoms.copy()
    centre = atoms.get_positions().mean(0)
    atoms.set_positions(centre + factor * (atoms.get_positions() - centre))
    return atoms


def per_structure_std(evaluator, frames) -> np.ndarray:
    """RMS over atoms of the predicted per-atom force std, one value per structure (eV/Å)."""
    return np.array([float(np.sqrt(np.mean(r["forces_std"] ** 2))) for r in evaluator(frames)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--structures", type=int, default=1000, help="test_01 structures used (every k-th)")
    parser.add_argument("--out", default="uncertainty_bench.png")
    args = parser.parse_args()

    import ase.io

    from mlip import load
    from mlip.calculator import BatchEvaluator
    from mlip.data import open_dataset
    from mlip.train.plots import _pyplot
    from mlip.uncertainty.calibration import spearman

    model = load(args.model.split(",") if "," in args.model else args.model)
    if not getattr(model, "provides_uncertainty", False):
        raise SystemExit(f"{args.model}: this model gives no uncertainty")
    evaluator = BatchEvaluator(model, max_atoms=2000)
    test = open_dataset(str(ROOT / "data/rmd17/rmd17_ethanol_test_01.npz"))
    step = max(1, len(test) // args.structures)
    records = [test[i] for i in range(0, len(test), step)][: args.structures]
    frames = [r.to_ase() for r in records]
    results = evaluator(frames)
    std = np.array([float(np.sqrt(np.mean(r["forces_std"] ** 2))) for r in results])
    rmse = np.array([float(np.sqrt(np.mean(np.sum((r["forces"] - rec.forces.numpy()) ** 2, axis=1))))
                     for r, rec in zip(results, records)])
    rho = spearman(std, rmse)
    print(f"{args.model}: {len(frames)} rMD17 ethanol test_01 structures")
    print(f"  Spearman(predicted force std, actual force RMSE) per structure: {rho:.3f}  (acceptance >= 0.5)")
    print(f"  force std: mean {1000 * std.mean():.1f} meV/Å; actual force RMSE: mean {1000 * rmse.mean():.1f} meV/Å")
    far = {
        "H pulled 1 Å out": per_structure_std(evaluator, [pulled_hydrogen(a) for a in frames[:100]]),
        "compressed 20%": per_structure_std(evaluator, [compressed(a) for a in frames[:100]]),
        "3BPA": per_structure_std(evaluator, ase.io.read(ROOT / "data/extxyz/3bpa_train_300K.xyz", index=":50")),
    }
    print(f"  {'structures':<20}{'mean force std meV/Å':>22}{'x test_01':>11}")
    print(f"  {'test_01':<20}{1000 * std.mean():>22.1f}{1.0:>11.1f}")
    for name, values in far.items():
        print(f"  {name:<20}{1000 * values.mean():>22.1f}{values.mean() / std.mean():>11.1f}  (acceptance >= 3)")
    if getattr(model, "uncertainty", None) is not None:  # a one-model estimate: its cost
        import time

        import torch

        from mlip.graph import collate

        batch = collate([r for r in records[:32]], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
        fitted = model.uncertainty

        def seconds(on: bool) -> float:
            model.uncertainty = fitted if on else None
            start = time.perf_counter()
            for _ in range(5):
                model(batch)
            return (time.perf_counter() - start) / 5

        seconds(True), seconds(False)  # warm up
        timings = {True: [], False: []}
        for _ in range(5):  # interleaved, best of 5
            for on in (False, True):
                timings[on].append(seconds(on))
        model.uncertainty = fitted
        base, extra = min(timings[False]), min(timings[True])
        print(f"  cost (32 structures, energy+forces+stress, {torch.get_num_threads()} threads): {1000 * base:.1f} ms "
              f"without, {1000 * extra:.1f} ms with the uncertainty (+{100 * (extra / base - 1):.1f}%; "
              f"acceptance <= 10%)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([1000 * std] + [1000 * v for v in far.values()], tick_labels=["test_01", *far])
    ax.set_yscale("log")
    ax.set_ylabel("per-structure force std (meV/Å)")
    ax.set_title(f"Spearman on test_01: {rho:.2f}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    attach(args.out)
    print(f"  plot: {args.out}")


if __name__ == "__main__":
    recorded(main)

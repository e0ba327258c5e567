"""TransIP's learned equivariance against its augmentation baseline, same data, seeds and epochs.

    python benchmarks/bench_transip.py [--molecule aspirin] [--train-size 400] [--epochs 15] [--weight 0.1]

Both runs are `mlip train experiment=quickstart model=transip model.preset=quickstart` on rMD17
(train_01 split, test_01 for testing) with rotated training batches (data.augment_rotations=true);
TransIP adds the alignment loss (model.alignment_weight=WEIGHT), the baseline does not
(model.alignment_weight=0). Prints, for both: training time, test energy and force MAEs and the
rotation error of the best checkpoint on the test split (mean relative change of forces under
random rotations, and energy change per atom).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from record import recorded

ROOT = Path(__file__).resolve().parents[1]


def run(label: str, weight: float, args) -> dict:
    from mlip import load
    from mlip.train.data import rmd17
    from mlip.train.run import compose, rotation_report, train

    overrides = ["experiment=quickstart", "model=transip", "model.preset=quickstart", f"data.molecule={args.molecule}",
                 f"data.train_size={args.train_size}", "data.augment_rotations=true",
                 f"model.alignment_weight={weight}", f"trainer.max_epochs={args.epochs}",
                 "trainer.max_time=null", f"name=bench_transip_{label}", f"run_dir={args.run_dir}"]
    summary = train(compose(overrides))
    model = load(summary["best"])
    test = rmd17(args.molecule, root=str(ROOT / "data" / "rmd17")).build_splits()["test"]
    rotation = rotation_report(model, test, model.cutoff, 16, model.max_neighbors, max_batches=8)
    metrics = summary["test_metrics"]
    return {"label": label, "seconds": summary["fit_seconds"], "epochs": summary["epochs"],
            "energy": 1000 * metrics["energy_per_atom_mae"], "forces": 1000 * metrics["forces_mae"],
            "rotation_forces": rotation["forces"], "rotation_energy": 1000 * rotation["energy_per_atom"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecule", default="aspirin")
    parser.add_argument("--train-size", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--weight", type=float, default=0.1, help="TransIP's alignment_weight")
    parser.add_argument("--run-dir", default=str(ROOT / "runs"))
    args = parser.parse_args()
    os.environ.setdefault("MLIP_DATA", str(ROOT / "data"))
    rows = [run("transip", args.weight, args), run("baseline", 0.0, args)]
    print(f"\nrMD17 {args.molecule}: {args.train_size} training structures (train_01), {args.epochs} epochs each, "
          "rotated batches in both, tested on test_01")
    print(f"{'model':<34}{'train s':>9}{'E MAE meV/atom':>16}{'F MAE meV/Å':>13}{'rot. F (rel)':>14}"
          f"{'rot. E meV/atom':>17}")
    names = {"transip": f"TransIP (alignment {args.weight:g})", "baseline": "baseline (augmentation only)"}
    for r in rows:
        print(f"{names[r['label']]:<34}{r['seconds']:>9.0f}{r['energy']:>16.2f}{r['forces']:>13.1f}"
              f"{r['rotation_forces']:>14.3f}{r['rotation_energy']:>17.3f}")
    t, b = rows
    print(f"\nrotation error of forces, TransIP / baseline: {t['rotation_forces'] / b['rotation_forces']:.2f}; "
          f"force MAE, TransIP / baseline: {t['forces'] / b['forces']:.2f}")


if __name__ == "__main__":
    recorded(main)

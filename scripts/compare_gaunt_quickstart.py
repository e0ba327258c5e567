"""Facet's default messages against the Gaunt options at equal wall-clock, on rMD17 molecules.

    python scripts/compare_gaunt_quickstart.py [--molecules ethanol aspirin] [--variant tensor_product=gaunt correlation=3]

For each molecule: `mlip train experiment=quickstart data.molecule=M` (the default Facet, its own
11-minute safety net), then the same with the variant's model overrides and trainer.max_time set
to the default run's measured training time, so both get the same wall-clock. Prints the test
force and energy MAE of both (test_01, best checkpoint) and the epochs each reached. Run it alone
on the machine: the budget is wall-clock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(overrides: list, run_dir: Path) -> dict:
    command = [sys.executable, "-m", "mlip", "train", "experiment=quickstart", f"run_dir={run_dir}",
               "trainer.enable_progress_bar=false", *overrides]
    print("$ mlip train " + " ".join(command[4:]), flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    summary = sorted(run_dir.glob("quickstart/*/summary.json"))[-1]
    return json.loads(summary.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", nargs="+", default=["ethanol", "aspirin"])
    parser.add_argument("--variant", nargs="+", default=["tensor_product=gaunt", "correlation=3"])
    parser.add_argument("--out", default="runs/compare_gaunt")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for both runs (a smoke test)")
    args = parser.parse_args()
    variant = [f"model.{v}" for v in args.variant]
    rows = []
    for molecule in args.molecules:
        base = train([f"data.molecule={molecule}", *args.extra], ROOT / args.out / molecule / "default")
        seconds = max(int(round(base["fit_seconds"])), 1)
        budget = f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        other = train([f"data.molecule={molecule}", f"trainer.max_time={budget}", *variant, *args.extra],
                      ROOT / args.out / molecule / "variant")
        for name, s in (("default (cg)", base), (" ".join(args.variant), other)):
            m = s["test_metrics"]
            rows.append((molecule, name, s["epochs"], s["fit_seconds"], 1000 * m["forces_mae"],
                         1000 * m["energy_mae"]))
            print(rows[-1], flush=True)
    print(f"\nrMD17, quickstart Facet, equal wall-clock per molecule, test_01 (best checkpoint)")
    print(f"{'molecule':<10}{'model':<36}{'epochs':>7}{'fit s':>8}{'force MAE meV/Å':>17}{'energy MAE meV':>16}")
    for molecule, name, epochs, fit, force, energy in rows:
        print(f"{molecule:<10}{name:<36}{epochs:>7}{fit:>8.0f}{force:>17.2f}{energy:>16.3f}")


if __name__ == "__main__":
    main()

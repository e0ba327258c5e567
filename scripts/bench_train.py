"""Training at an equal wall-clock budget: mlip Facet against MACE on revised MD17 ethanol.

    python scripts/bench_train.py [--molecule ethanol]

Both train on rmd17_<molecule>_train_01 split 950 / 50 (the same structures: the split mlip's
DataModule draws with split_seed 0) and are tested on rmd17_<molecule>_test_01 (1000 structures).
mlip runs `mlip train experiment=quickstart`; its training time (the fit phase) is the budget.
MACE (mace-torch, in .bench-venvs/mace) is a comparable small model (32x0e+32x1o, correlation 3,
2 interactions, r_max 5 Å, EMA, batch 4): a 3-epoch probe measures its seconds per epoch, and it
then gets as many epochs as fit in the budget. Prints both test MAEs and training throughput.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import peer_python  # noqa: E402  (creates the MACE venv if absent)


def write_extxyz(npz: Path, indices, path: Path) -> None:
    import ase.io
    from ase import Atoms
    from ase import units

    z = np.load(npz)
    kcal = units.kcal / units.mol
    frames = []
    for i in indices:
        atoms = Atoms(numbers=z["nuclear_charges"], positions=z["coords"][i])
        atoms.info["REF_energy"] = float(z["energies"][i]) * kcal
        atoms.arrays["REF_forces"] = z["forces"][i] * kcal
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")


def run_ours(molecule: str, work: Path) -> dict:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlip", "train", "experiment=quickstart", f"data.molecule={molecule}",
                    f"run_dir={work / 'mlip'}", "trainer.enable_progress_bar=false"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    (run_dir,) = (work / "mlip" / "quickstart").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    m = summary["test_metrics"]
    return {"forces_mae": m["forces_mae"] * 1000, "energy_mae": m["energy_per_atom_mae"] * 1000,
            "fit_seconds": summary["fit_seconds"], "wall_seconds": time.perf_counter() - start,
            "epochs": summary["epochs"],  # Trainer.current_epoch after fit: the epochs completed
            "structures_per_s": summary["epochs"] * summary["train_structures"] / summary["fit_seconds"]}


def run_mace(python: str, files: dict, work: Path, epochs: int, name: str) -> tuple[Path, float]:
    mace_run_train = str(Path(python).parent / "mace_run_train")
    args = [mace_run_train, f"--name={name}", f"--train_file={files['train']}", f"--valid_file={files['val']}",
            f"--test_file={files['test']}", "--E0s=average", "--model=MACE", "--hidden_irreps=32x0e + 32x1o",
            "--r_max=5.0", "--num_interactions=2", "--correlation=3", "--batch_size=4", "--valid_batch_size=10",
            f"--max_num_epochs={epochs}", "--energy_key=REF_energy", "--forces_key=REF_forces", "--device=cpu",
            "--default_dtype=float32", "--error_table=PerAtomMAE", "--ema", "--ema_decay=0.99", "--amsgrad",
            "--lr=0.01", "--eval_interval=1", "--seed=0", f"--log_dir={work / name / 'logs'}",
            f"--model_dir={work / name}", f"--checkpoints_dir={work / name / 'checkpoints'}",
            f"--results_dir={work / name / 'results'}"]
    start = time.perf_counter()
    env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(args, check=True, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work / name / "logs", time.perf_counter() - start


def _main_log(log_dir: Path) -> str:
    """MACE's run log (not the *_debug.log, which repeats every line)."""
    return "".join(p.read_text() for p in sorted(log_dir.glob("*.log")) if not p.name.endswith("_debug.log"))


def epoch_seconds(log_dir: Path) -> float:
    """Mean time between MACE's per-epoch validation lines (one per distinct epoch)."""
    stamps = {}
    for line in _main_log(log_dir).splitlines():
        match = re.search(r"Epoch\s+(\d+):", line)
        if match:
            stamps.setdefault(int(match.group(1)), datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f"))
    stamps = [stamps[k] for k in sorted(stamps)]
    if len(stamps) < 2:
        raise RuntimeError(f"cannot time MACE's epochs from {log_dir}")
    return (stamps[-1] - stamps[0]).total_seconds() / (len(stamps) - 1)


def mace_test_mae(log_dir: Path) -> dict:
    """MAE E (meV/atom) and MAE F (meV/Å) from the table MACE prints after "Error-table on TEST"."""
    section = _main_log(log_dir).split("Error-table on TEST")[-1].splitlines()
    table = [l for l in section if l.strip().startswith("|")]
    cols = [c.strip() for c in table[0].split("|")]
    values = [c.strip() for c in table[1].split("|")]
    get = lambda key: float(values[next(i for i, c in enumerate(cols) if c.startswith(key))])  # noqa: E731
    return {"energy_mae": get("MAE E"), "forces_mae": get("MAE F")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecule", default="ethanol")
    args = parser.parse_args()
    data = ROOT / "data" / "rmd17"
    work = Path(tempfile.mkdtemp(prefix="mlip-bench-train-"))
    order = np.random.default_rng(0).permutation(1000)  # mlip's DataModule split, split_seed 0
    files = {k: work / f"{k}.xyz" for k in ("train", "val", "test")}
    write_extxyz(data / f"rmd17_{args.molecule}_train_01.npz", order[50:], files["train"])
    write_extxyz(data / f"rmd17_{args.molecule}_train_01.npz", np.sort(order[:50]), files["val"])
    write_extxyz(data / f"rmd17_{args.molecule}_test_01.npz", range(1000), files["test"])

    print("training mlip Facet (experiment=quickstart)...", flush=True)
    ours = run_ours(args.molecule, work)
    budget = ours["fit_seconds"]
    python = peer_python("mace")
    print(f"budget {budget:.0f} s; timing MACE over a 3-epoch probe...", flush=True)
    probe_logs, _ = run_mace(python, files, work, 3, "mace_probe")
    per_epoch = epoch_seconds(probe_logs)
    epochs = max(1, int(budget // per_epoch))
    print(f"MACE: {per_epoch:.1f} s/epoch -> {epochs} epochs in the budget", flush=True)
    logs, wall = run_mace(python, files, work, epochs, "mace")
    mace = {**mace_test_mae(logs), "epochs": epochs, "fit_seconds": epochs * per_epoch,
            "structures_per_s": 950 / per_epoch, "wall_seconds": wall}

    print(f"\nrMD17 {args.molecule}: 950 train / 50 val (train_01), tested on test_01 (1000); "
          f"equal training budget {budget:.0f} s, 2-core CPU")
    print(f"{'model':<34}{'epochs':>7}{'train s':>9}{'struct/s':>10}{'E MAE meV/atom':>16}{'F MAE meV/Å':>13}")
    for label, r in (("mlip Facet (quickstart, 57 k)", ours), ("MACE 32x0e+32x1o (mace-torch)", mace)):
        print(f"{label:<34}{r['epochs']:>7}{r['fit_seconds']:>9.0f}{r['structures_per_s']:>10.1f}"
              f"{r['energy_mae']:>16.2f}{r['forces_mae']:>13.1f}")
    print(f"\nforce MAE ratio MACE / mlip: {mace['forces_mae'] / ours['forces_mae']:.2f}")


if __name__ == "__main__":
    main()

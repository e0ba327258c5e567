"""Training at an equal wall-clock budget, molecule by molecule: mlip's potentials against MACE.

    python benchmarks/bench_train.py [--molecule ethanol] [--all] [--models facet escn escaip]
                                  [--budget SECONDS] [--set KEY=VALUE ...] [--no-mace]
                                  [--out runs/bench_train]

Molecules (``--all``: every one; all bundled in data/):
  ethanol, aspirin  rMD17 train_01 as 950 train / 50 val (the split mlip's DataModule draws with
                    split_seed 0), tested on test_01 (1000 structures)
  3bpa              3BPA train_300K (500): 375 train / 25 val / 100 test, drawn with seed 0 (the
                    300/600/1200 K test sets are not bundled)
  acac              acetylacetone train_300K (500): 475 train / 25 val; tested on test_MD_300K (650)
                    and, for temperature transfer, test_MD_600K (650)

Both sides read the same extxyz files. mlip runs `mlip train experiment=quickstart model=NAME` on
them with ``time_budget`` = the budget (default: the quickstart's own), so its cosine schedule ends
with the time (mlip.train.budget); the first model's training time (fit phase) is the budget MACE
gets. MACE (mace-torch, in .bench-venvs/mace) is a comparable small model (32x0e+32x1o,
correlation 3, 2 interactions, r_max 5 Å, EMA, batch 4): a 3-epoch probe measures its seconds per
epoch, and it then gets as many epochs as fit in the budget. Every model is tested by the same code
here (energy per atom and force-component MAE); MACE's predictions come from mace_eval_configs.
Prints one table (a row per molecule and test set, the MACE / model force-MAE ratio), writes
results.json and a bar plot of the force MAEs to --out.
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

from record import attach, recorded  # noqa: E402  (benchmarks/record.py: --record NAME)

DATA = ROOT / "data"
MOLECULES = ("ethanol", "aspirin", "3bpa", "acac")
LABELS = {"facet": "mlip Facet", "escn": "mlip eSCN", "escaip": "mlip EScAIP", "transip": "mlip TransIP"}


def write_extxyz(frames, path: Path) -> None:
    """(numbers, positions Å, energy eV, forces eV/Å) frames -> extxyz with REF_energy / REF_forces."""
    import ase.io
    from ase import Atoms

    out = []
    for numbers, positions, energy, forces in frames:
        atoms = Atoms(numbers=numbers, positions=positions)
        atoms.info["REF_energy"] = float(energy)
        atoms.arrays["REF_forces"] = np.asarray(forces, dtype=float)
        out.append(atoms)
    ase.io.write(path, out, format="extxyz")


def rmd17_frames(path: Path, indices):
    from ase import units

    z = np.load(path)
    kcal = units.kcal / units.mol
    return [(z["nuclear_charges"], z["coords"][i], float(z["energies"][i]) * kcal, z["forces"][i] * kcal)
            for i in indices]


def xyz_frames(path: Path, indices=None):
    import ase.io

    frames = ase.io.read(path, index=":")
    chosen = frames if indices is None else [frames[i] for i in indices]
    return [(a.numbers, a.positions, a.get_potential_energy(), a.get_forces()) for a in chosen]


def prepare(molecule: str, work: Path) -> dict:
    """Write train/val/test files for one molecule; returns {"train", "val", "tests": {name: path}, "about"}."""
    work.mkdir(parents=True, exist_ok=True)
    files = {"train": work / "train.xyz", "val": work / "val.xyz"}
    if molecule in ("ethanol", "aspirin"):
        order = np.random.default_rng(0).permutation(1000)  # mlip's DataModule split, split_seed 0
        source = DATA / "rmd17" / f"rmd17_{molecule}_train_01.npz"
        write_extxyz(rmd17_frames(source, order[50:]), files["train"])
        write_extxyz(rmd17_frames(source, np.sort(order[:50])), files["val"])
        write_extxyz(rmd17_frames(DATA / "rmd17" / f"rmd17_{molecule}_test_01.npz", range(1000)), work / "test.xyz")
        tests = {"test_01": work / "test.xyz"}
        about = "rMD17 train_01: 950 train / 50 val; test_01 (1000)"
    elif molecule == "3bpa":
        order = np.random.default_rng(0).permutation(500)
        source = DATA / "extxyz" / "3bpa_train_300K.xyz"
        write_extxyz(xyz_frames(source, order[125:]), files["train"])
        write_extxyz(xyz_frames(source, np.sort(order[100:125])), files["val"])
        write_extxyz(xyz_frames(source, np.sort(order[:100])), work / "test.xyz")
        tests = {"300K (held out)": work / "test.xyz"}
        about = "train_300K: 375 train / 25 val / 100 test"
    elif molecule == "acac":
        order = np.random.default_rng(0).permutation(500)
        source = DATA / "acac" / "train_300K.xyz"
        write_extxyz(xyz_frames(source, order[25:]), files["train"])
        write_extxyz(xyz_frames(source, np.sort(order[:25])), files["val"])
        tests = {}
        for temperature in ("300K", "600K"):
            path = work / f"test_{temperature}.xyz"
            write_extxyz(xyz_frames(DATA / "acac" / f"test_MD_{temperature}.xyz"), path)
            tests[f"MD {temperature}"] = path
        about = "train_300K: 475 train / 25 val; test_MD_300K, test_MD_600K (650 each)"
    else:
        raise ValueError(f"unknown molecule {molecule!r}; choose from {', '.join(MOLECULES)}")
    return {**files, "tests": tests, "about": about}


def errors(pred_energy, pred_forces, path: Path) -> dict:
    """Energy per atom (meV/atom) and force-component (meV/Å) MAE against a file's REF_ values."""
    import ase.io

    frames = ase.io.read(path, index=":")
    natoms = np.array([len(a) for a in frames])
    ref_e = np.array([a.info["REF_energy"] for a in frames])
    ref_f = np.concatenate([a.arrays["REF_forces"] for a in frames])
    return {"energy_mae": 1000 * float(np.mean(np.abs((np.asarray(pred_energy) - ref_e) / natoms))),
            "forces_mae": 1000 * float(np.mean(np.abs(np.concatenate(pred_forces) - ref_f)))}


def test_ours(checkpoint: str, tests: dict) -> dict:
    import mlip
    from mlip.data.readers.extxyz import ExtXYZDataset
    from mlip.train.run import predictions

    model = mlip.load(checkpoint)
    out = {}
    for name, path in tests.items():
        data = ExtXYZDataset(str(path), energy_key="REF_energy", forces_key="REF_forces")
        pred, _ = predictions(model, data, model.cutoff, 16, model.max_neighbors)
        counts = [int(data[i].num_nodes) for i in range(len(data))]
        forces = np.split(pred["forces"].reshape(-1, 3), np.cumsum(counts)[:-1])
        out[name] = errors(pred["energy"], forces, path)
    return out


def run_ours(model: str, files: dict, work: Path, budget: float | None, overrides=()) -> dict:
    args = [sys.executable, "-m", "mlip", "train", "experiment=quickstart", f"model={model}", "data=extxyz",
            "~data.molecule", "data.train_size=null", f"data.train={files['train']}", f"data.val={files['val']}",
            f"data.test={next(iter(files['tests'].values()))}", "++data.options.energy_key=REF_energy",
            "++data.options.forces_key=REF_forces", f"run_dir={work / model}", "trainer.enable_progress_bar=false",
            "last_layer_uncertainty=false", *overrides]
    if budget is not None:
        args += [f"time_budget={budget}"]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mlip train failed:\n{result.stderr[-3000:]}")
    run_dir = (work / model / "quickstart" / "latest").resolve()
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"tests": test_ours(summary["best"] or summary["last"], files["tests"]),
            "fit_seconds": summary["fit_seconds"], "wall_seconds": time.perf_counter() - start,
            "epochs": summary["epochs"], "structures_per_s": summary["epochs"] * summary["train_structures"]
            / summary["fit_seconds"]}


def run_mace(python: str, files: dict, work: Path, epochs: int, name: str) -> tuple[Path, float]:
    mace_run_train = str(Path(python).parent / "mace_run_train")
    args = [mace_run_train, f"--name={name}", f"--train_file={files['train']}", f"--valid_file={files['val']}",
            "--E0s=average", "--model=MACE", "--hidden_irreps=32x0e + 32x1o",
            "--r_max=5.0", "--num_interactions=2", "--correlation=3", "--batch_size=4", "--valid_batch_size=10",
            f"--max_num_epochs={epochs}", "--energy_key=REF_energy", "--forces_key=REF_forces", "--device=cpu",
            "--default_dtype=float32", "--error_table=PerAtomMAE", "--ema", "--ema_decay=0.99", "--amsgrad",
            "--lr=0.01", "--eval_interval=1", "--seed=0", f"--log_dir={work / name / 'logs'}",
            f"--model_dir={work / name}", f"--checkpoints_dir={work / name / 'checkpoints'}",
            f"--results_dir={work / name / 'results'}"]
    start = time.perf_counter()
    subprocess.run(args, check=True, cwd=work, env=_mace_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work / name / "logs", time.perf_counter() - start


def _mace_env() -> dict:
    return {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}


def test_mace(python: str, model_file: Path, tests: dict, work: Path) -> dict:
    import ase.io

    out = {}
    for k, (name, path) in enumerate(tests.items()):
        target = work / f"mace_predictions_{k}.xyz"
        subprocess.run([str(Path(python).parent / "mace_eval_configs"), f"--configs={path}", f"--model={model_file}",
                        f"--output={target}", "--device=cpu", "--default_dtype=float32"],  # its training dtype
                       check=True, env=_mace_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        frames = ase.io.read(target, index=":")
        out[name] = errors([a.info["MACE_energy"] for a in frames], [a.arrays["MACE_forces"] for a in frames], path)
    return out


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


def mace(files: dict, work: Path, budget: float, train_structures: int) -> dict:
    python = peer_python("mace")
    probe_logs, _ = run_mace(python, files, work, 3, "mace_probe")
    per_epoch = epoch_seconds(probe_logs)
    epochs = max(1, int(budget // per_epoch))
    print(f"  MACE: {per_epoch:.1f} s/epoch -> {epochs} epochs in {budget:.0f} s", flush=True)
    _, wall = run_mace(python, files, work, epochs, "mace")
    model_file = work / "mace" / "mace.model"
    return {"tests": test_mace(python, model_file, files["tests"], work), "epochs": epochs,
            "fit_seconds": epochs * per_epoch, "structures_per_s": train_structures / per_epoch, "wall_seconds": wall}


def count_frames(path: Path) -> int:
    import ase.io

    return len(ase.io.read(path, index=":"))


def table(results: dict, models: list, budget_note: str) -> str:
    names = models + (["mace"] if any("mace" in r for r in results.values()) else [])
    label = {**LABELS, "mace": "MACE 32x0e+32x1o"}
    lines = [f"equal training budget per molecule ({budget_note}), 2-core CPU; E MAE meV/atom, F MAE meV/Å"]
    header = f"{'molecule':<9}{'test set':<17}"
    for n in names:
        header += f"{label[n] + ' ep':>22}{'E':>7}{'F':>7}"
    if "mace" in names:
        header += "".join(f"{'MACE/' + n + ' F':>15}" for n in models)
    lines.append(header)
    for molecule, r in results.items():
        for test in r["tests"]:
            row = f"{molecule:<9}{test:<17}"
            for n in names:
                row += f"{r[n]['epochs']:>22}{r[n]['tests'][test]['energy_mae']:>7.2f}{r[n]['tests'][test]['forces_mae']:>7.1f}"
            if "mace" in names:
                row += "".join(f"{r['mace']['tests'][test]['forces_mae'] / r[n]['tests'][test]['forces_mae']:>14.2f}x"
                               for n in models)
            lines.append(row)
    lines.append("budgets (s, the first model's fit time): " + ", ".join(
        f"{m} {r['budget']:.0f}" for m, r in results.items()))
    return "\n".join(lines)


def plot(results: dict, models: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = models + (["mace"] if any("mace" in r for r in results.values()) else [])
    rows = [(m, t) for m, r in results.items() for t in r["tests"]]
    x = np.arange(len(rows))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    for k, n in enumerate(names):
        ax.bar(x + k * width, [results[m][n]["tests"][t]["forces_mae"] for m, t in rows], width,
               label={**LABELS, "mace": "MACE"}[n])
    ax.set_xticks(x + width * (len(names) - 1) / 2, [f"{m}\n{t}" for m, t in rows])
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.set_title("equal wall-clock training budget per molecule")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecule", default="ethanol", choices=MOLECULES)
    parser.add_argument("--all", action="store_true", help="every bundled molecule")
    parser.add_argument("--models", nargs="+", default=["facet"], help="mlip architectures (quickstart presets)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of training per model (default: the quickstart's time_budget)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="Hydra overrides for every mlip run (e.g. loss.forces_weight=100)")
    parser.add_argument("--no-mace", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_train"))
    args = parser.parse_args()
    molecules = MOLECULES if args.all else (args.molecule,)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for molecule in molecules:
        work = Path(tempfile.mkdtemp(prefix=f"mlip-bench-train-{molecule}-"))
        files = prepare(molecule, work / "data")
        print(f"{molecule}: {files['about']}", flush=True)
        r = {"about": files["about"], "tests": list(files["tests"])}
        for model in args.models:
            r[model] = run_ours(model, files, work, args.budget, args.set)
            print(f"  {model}: {r[model]['epochs']} epochs in {r[model]['fit_seconds']:.0f} s, test "
                  + ", ".join(f"{t} F {e['forces_mae']:.1f}" for t, e in r[model]["tests"].items()), flush=True)
        r["budget"] = r[args.models[0]]["fit_seconds"]
        if not args.no_mace:
            r["mace"] = mace(files, work, r["budget"], count_frames(files["train"]))
            print("  MACE test " + ", ".join(f"{t} F {e['forces_mae']:.1f}" for t, e in r["mace"]["tests"].items()),
                  flush=True)
        results[molecule] = r
        (out / "results.json").write_text(json.dumps(results, indent=1))
    note = f"time_budget {args.budget:.0f} s" if args.budget else "the quickstart's time_budget"
    if args.set:
        note += "; " + " ".join(args.set)
    print("\n" + table(results, args.models, note))
    plot(results, args.models, out / "force_mae.png")
    attach(out / "force_mae.png")
    print(f"\nresults: {out / 'results.json'}, plot: {out / 'force_mae.png'}")


if __name__ == "__main__":
    recorded(main)

"""Routes to rotational symmetry for a non-equivariant potential, on diverse molecules and small data.

    python benchmarks/bench_symmetry.py [--sizes 25 100] [--budgets 180 300] [--models ...] [--set loss.kind=mse]
                                     [--out runs/bench_symmetry]

The data: every bundled molecular set mixed together, so that the training set holds many different
molecules (the setting of the TransIP paper's claim): rMD17 ethanol and aspirin (train_01 pool,
test_01 test), 3BPA (train_300K: 100 held out for testing, the rest the pool), acetylacetone
(train_300K pool, test_MD_300K test) and the 18 OMol25 noble-gas compounds (14 always in training, 4
tested), elements H, C, N, O, F, S, Cl, Ar, Kr, Xe and more. Per size n: n structures of each
molecule (seed 0) plus the 14 OMol25 ones, 10 more of each molecule for validation; the test set is
the same at every size (100 per molecule + 4 OMol25). The sets come from different electronic-
structure methods (PBE, wB97X, PBE+D3, wB97M-V), so energies are referenced per set and composition
(the pool's mean energy of that molecule subtracted; 0 for the single-frame OMol25 molecules):
forces, the measure here, are untouched.

Models, each `mlip train experiment=quickstart` at its quickstart preset with ``time_budget`` the
size's budget (equal wall-clock across models), plus the ``--set`` overrides (the benchmarks page
table: loss.kind=mse, as under the quickstart's Huber loss the alignment and frame-averaged TransIP runs
stayed at the zero-force error):
  transip-atom       TransIP, alignment loss on atom embeddings (weight 0.1), rotated batches
  transip-structure  TransIP, alignment on pooled structure embeddings (the paper's), rotated batches
  augmentation       TransIP without alignment, rotated batches (the paper's baseline)
  frames             TransIP with frame averaging (so3: stochastic frames in training, 4 at test)
  facet              Facet (exactly equivariant), for reference
Every TransIP variant uses ``--transip-positions`` (default: none, TransIP's default: positions enter
through the pair features only; rotary, the paper's, starts learning forces later and costs about
1.5x per step here: benchmarks/bench_transip_positions.py).

Prints one table (test force MAE in meV/Å and the rotation error of the forces: mean relative change
of F(Rx) against R F(x) on the test set) per size and model, writes results.json and a plot of both
against the training-set size to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import rmd17_frames, write_extxyz, xyz_frames  # noqa: E402  (one home for the extxyz round trip)

from record import attach, recorded  # noqa: E402  (benchmarks/record.py: --record NAME)

MODELS = {
    "transip-atom": ("TransIP, atom alignment", ["model=transip", "model.alignment=atom", "model.alignment_weight=0.1",
                                                 "data.augment_rotations=true"]),
    "transip-structure": ("TransIP, pooled alignment", ["model=transip", "model.alignment=structure",
                                                        "model.alignment_weight=0.1", "data.augment_rotations=true"]),
    "augmentation": ("TransIP, augmentation only", ["model=transip", "model.alignment_weight=0",
                                                    "data.augment_rotations=true"]),
    "frames": ("TransIP, frame averaging", ["model=transip", "model.alignment_weight=0",
                                            "++model.frame_averaging=so3"]),
    "facet": ("Facet (equivariant)", ["model=facet"]),
}


def sources(seed: int = 0) -> dict:
    """{molecule: (pool frames, test frames)}; frames are (numbers, positions Å, energy eV, forces eV/Å)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("ethanol", "aspirin"):
        test = rmd17_frames(DATA / "rmd17" / f"rmd17_{name}_test_01.npz", range(1000))
        out[name] = (rmd17_frames(DATA / "rmd17" / f"rmd17_{name}_train_01.npz", range(1000)),
                     [test[i] for i in rng.permutation(len(test))[:100]])
    bpa = xyz_frames(DATA / "extxyz" / "3bpa_train_300K.xyz")
    order = rng.permutation(len(bpa))
    out["3bpa"] = ([bpa[i] for i in order[100:]], [bpa[i] for i in order[:100]])
    acac_test = xyz_frames(DATA / "acac" / "test_MD_300K.xyz")
    out["acac"] = (xyz_frames(DATA / "acac" / "train_300K.xyz"),
                   [acac_test[i] for i in rng.permutation(len(acac_test))[:100]])
    omol = xyz_frames(DATA / "omol25" / "structs_noble_gas_compounds.xyz")
    order = rng.permutation(len(omol))
    out["omol25"] = ([omol[i] for i in order[4:]], [omol[i] for i in order[:4]])
    return out


def reference(frames, means: dict):
    """Energies minus the mean of their composition (``means``: composition -> eV; 0 where unknown)."""
    return [(z, x, e - means.get(tuple(sorted(z.tolist())), e), f) for z, x, e, f in frames]


def datasets(size: int, work: Path, seed: int = 0) -> dict:
    """train/val/test extxyz files for ``size`` structures per molecule (the same test set at every size)."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for molecule, (pool, held_out) in sources(seed).items():
        means = {}
        for z, _, e, _ in pool:
            means.setdefault(tuple(sorted(z.tolist())), []).append(e)
        means = {k: float(np.mean(v)) for k, v in means.items()}
        if molecule == "omol25":
            train += reference(pool, means)
            test += reference(held_out, means)
            continue
        order = rng.permutation(len(pool))
        train += reference([pool[i] for i in order[:size]], means)
        val += reference([pool[i] for i in order[size:size + 10]], means)
        test += reference(held_out, means)
    work.mkdir(parents=True, exist_ok=True)
    files = {split: work / f"{split}.xyz" for split in ("train", "val", "test")}
    for split, frames in (("train", train), ("val", val), ("test", test)):
        write_extxyz(frames, files[split])
    return {**files, "train_structures": len(train), "test_structures": len(test)}


def run(model: str, files: dict, budget: float, work: Path, positions: str, extra=()) -> dict:
    from mlip import load
    from mlip.data.readers.extxyz import ExtXYZDataset
    from mlip.train.run import compose, predictions, rotation_report, train

    overrides = ["experiment=quickstart", *MODELS[model][1], "data=extxyz", "~data.molecule", "data.train_size=null",
                 f"data.train={files['train']}", f"data.val={files['val']}", f"data.test={files['test']}",
                 "++data.options.energy_key=REF_energy", "++data.options.forces_key=REF_forces",
                 f"time_budget={budget}", f"run_dir={work}", f"name={model}", "trainer.enable_progress_bar=false",
                 "last_layer_uncertainty=false", *extra]
    if model != "facet":
        overrides.append(f"++model.position_encoding={positions}")
    summary = train(compose(overrides))
    net = load(summary["best"] or summary["last"])
    test = ExtXYZDataset(str(files["test"]), energy_key="REF_energy", forces_key="REF_forces")
    pred, ref = predictions(net, test, net.cutoff, 16, net.max_neighbors)
    rotation = rotation_report(net, test, net.cutoff, 16, net.max_neighbors, max_batches=8)
    return {"epochs": summary["epochs"], "fit_seconds": summary["fit_seconds"],
            "forces_mae": 1000 * float(np.mean(np.abs(pred["forces"] - ref["forces"]))),
            "rotation_forces": rotation["forces"], "rotation_energy_per_atom": 1000 * rotation["energy_per_atom"]}


def table(results: dict, models: list) -> str:
    lines = [f"{'train structures':<18}{'budget s':>9}  " + "".join(f"{MODELS[m][0]:>30}" for m in models),
             f"{'':<18}{'':>9}  " + "".join(f"{'F MAE meV/Å  rot. F':>30}" for _ in models)]
    for size, r in results.items():
        row = f"{r['train_structures']:<18}{r['budget']:>9.0f}  "
        for m in models:
            row += f"{r[m]['forces_mae']:>20.1f}{r[m]['rotation_forces']:>10.4f}"
        lines.append(row)
    return "\n".join(lines)


def plot(results: dict, models: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["train_structures"] for r in results.values()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in models:
        axes[0].plot(sizes, [r[m]["forces_mae"] for r in results.values()], "o-", label=MODELS[m][0])
        axes[1].plot(sizes, [max(r[m]["rotation_forces"], 1e-16) for r in results.values()], "o-", label=MODELS[m][0])
    axes[0].set_ylabel("test force MAE (meV/Å)")
    axes[1].set_ylabel("rotation error of forces |F(Rx) - RF(x)| / |F|")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training structures (mixed molecules)")
    axes[0].legend(fontsize=8)
    fig.suptitle("diverse molecules at equal wall-clock per size")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[25, 100], help="structures per molecule")
    parser.add_argument("--budgets", nargs="+", type=float, default=[180, 300], help="seconds per size")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--transip-positions", default="none", choices=["none", "offset", "rotary"])
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="Hydra overrides for every run, e.g. loss.energy_weight=0 (named in the table's header)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_symmetry"))
    args = parser.parse_args()
    if len(args.budgets) != len(args.sizes):
        parser.error("give one budget per size")
    os.environ.setdefault("MLIP_DATA", str(DATA))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for size, budget in zip(args.sizes, args.budgets):
        files = datasets(size, out / f"data-{size}")
        r = {"train_structures": files["train_structures"], "test_structures": files["test_structures"],
             "budget": budget}
        print(f"{size} per molecule: {files['train_structures']} training structures, "
              f"{files['test_structures']} test, {budget:.0f} s each", flush=True)
        for model in args.models:
            r[model] = run(model, files, budget, out / f"runs-{size}", args.transip_positions, args.overrides)
            print(f"  {MODELS[model][0]}: {r[model]['epochs']} epochs, F MAE {r[model]['forces_mae']:.1f} meV/Å, "
                  f"rotation error {r[model]['rotation_forces']:.4f}", flush=True)
        results[size] = r
        (out / "results.json").write_text(json.dumps({"transip_positions": args.transip_positions,
                                                      "overrides": args.overrides, "results": results}, indent=1))
    print(f"\nmixed molecules (rMD17 ethanol + aspirin, 3BPA, acetylacetone, OMol25), TransIP positions: "
          f"{args.transip_positions}; overrides: {' '.join(args.overrides) or 'none'}; "
          "rotation error: mean |F(Rx) - R F(x)| / |F(x)| over the test set")
    print(table(results, args.models))
    plot(results, args.models, out / "symmetry.png")
    attach(out / "symmetry.png")
    print(f"\nresults: {out / 'results.json'}, plot: {out / 'symmetry.png'}")


if __name__ == "__main__":
    recorded(main)

"""The `mlip` console script: train | eval | prepare | info | quickstart (relax, md, export, verify follow)."""

from __future__ import annotations

import argparse
import os
import sys
import time

BUNDLED = [  # (name, path relative to the data folder, reader options)
    ("rMD17 ethanol train_01", "rmd17/rmd17_ethanol_train_01.npz", {}),
    ("rMD17 aspirin train_01", "rmd17/rmd17_aspirin_train_01.npz", {}),
    ("MD17 ethanol CCSD(T)", "md17/ethanol_ccsd_t-train.npz", {}),
    ("MPtrj JSON", "mptrj/MPtrj_sample_DERIVED_from_ffast.json", {}),
    ("MPtrj extxyz (Si)", "mptrj/mp-149_nequix.extxyz", {}),
    ("MPtrj extxyz", "mptrj/mptrj_ffast_first10.extxyz", {}),
    ("OMol25 ASE-LMDB", "omol25/omol25_noble_gas_DERIVED.aselmdb", {}),
    ("OMol25 extxyz", "omol25/structs_noble_gas_compounds.xyz", {}),
    ("OC20 slab (ASE db)", "oc20/fairchem_tests_atoms.json", {}),
    ("3BPA extxyz", "extxyz/3bpa_train_300K.xyz", {}),
    ("acetylacetone 300 K", "acac/train_300K.xyz", {}),
    ("acetylacetone 600 K test", "acac/test_MD_600K.xyz", {}),
    ("HfO2 extxyz", "extxyz/sevennet_hfo2.extxyz", {}),
]


def _parse_options(pairs: list[str]) -> dict:
    """``key=value`` reader options; values parsed as int, float, bool or left as strings."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"mlip: reader option {pair!r} is not key=value")
        key, value = pair.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        if value in ("true", "True"):
            value = True
        elif value in ("false", "False"):
            value = False
        out[key] = value
    return out


def dataset_summary(name: str, dataset, cutoff: float, progress: bool = True) -> dict:
    """Read every frame, build its graph at ``cutoff``, and summarise (one table row)."""
    from mlip.progress import progress as tqdm

    from mlip.data import StatisticsAccumulator
    from mlip.graph import build_graph

    acc = StatisticsAccumulator(cutoff)
    start = time.perf_counter()
    for data in tqdm(dataset, total=len(dataset), desc=name, unit="frame", leave=False, disable=not progress):
        acc.add(build_graph(data, cutoff))
    seconds = time.perf_counter() - start
    stats = acc.result()
    return {"name": name, "format": getattr(dataset, "format_name", "?"), "seconds": seconds, **stats}


def print_table(rows: list[dict], cutoff: float, file=None) -> None:
    from ase.data import chemical_symbols

    file = file or sys.stdout
    header = ("dataset", "format", "frames", "atoms/frame", "elements", "periodic", "charge/spin",
              f"nbrs@{cutoff:g}Å", "E resid eV", "F rms eV/Å", "frames/s")
    table = []
    for r in rows:
        aps = r["atoms_per_structure"]
        elements = "".join(chemical_symbols[z] for z in r["elements"])
        table.append((
            r["name"], r["format"], str(r["n_structures"]),
            f"{aps['min']}-{aps['max']}" if aps["min"] != aps["max"] else str(aps["min"]),
            elements if len(elements) <= 14 else elements[:12] + "..",
            str(r["n_periodic"]),
            f"{','.join(map(str, r['charges']))}/{','.join(map(str, r['spins']))}",
            f"{r['avg_num_neighbors']:.1f}",
            "-" if r.get("energy_residual_rms") is None else f"{r['energy_residual_rms']:.3g}",
            "-" if r["force_rms"] is None else f"{r['force_rms']:.3f}",
            f"{r['n_structures'] / max(r['seconds'], 1e-9):.0f}",
        ))
    widths = [max(len(h), *(len(row[k]) for row in table)) for k, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line, file=file)
    print("-" * len(line), file=file)
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)), file=file)


def cmd_info(args) -> int:
    from mlip.data import open_dataset

    options = _parse_options(args.option)
    rows = []
    for path in args.paths:
        ds = open_dataset(path, format=args.format, **options)
        rows.append(dataset_summary(os.path.basename(path.rstrip("/")), ds, args.cutoff, progress=not args.quiet))
    print_table(rows, args.cutoff)
    return 0


def cmd_quickstart(args) -> int:
    from mlip.data import open_dataset

    from mlip.resources import data_dir

    root = args.data or str(data_dir())
    if not os.path.isdir(root):
        raise SystemExit(f"mlip quickstart: no bundled data folder at {root!r}; pass --data")
    print(f"mlip quickstart: reading every bundled dataset in {root}/, building graphs at {args.cutoff:g} Å")
    rows = []
    for name, rel, options in BUNDLED:
        ds = open_dataset(os.path.join(root, rel), **options)
        rows.append(dataset_summary(name, ds, args.cutoff, progress=not args.quiet))
    print_table(rows, args.cutoff)
    total = sum(r["n_structures"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    print(f"\n{len(rows)} datasets, {total} frames read, validated and turned into graphs in {seconds:.1f} s")
    if args.data_only:
        return 0
    from mlip.train.run import compose, train

    print("\nmlip quickstart: training Facet on rMD17 ethanol (configs/experiment/quickstart.yaml), "
          "then testing it on test_01 and plotting")
    overrides = ["experiment=quickstart", f"data.root={os.path.abspath(root)}/rmd17", *args.overrides]
    summary = train(compose(overrides))
    return simulate(summary, os.path.join(root, "rmd17", "rmd17_ethanol_test_01.npz"), quiet=args.quiet)


def simulate(summary: dict, test_file: str, quiet: bool = False) -> int:
    """The quickstart's second half, with the trained model: relax test structures (batched),
    run a short NVT MD of one, export the model to TorchScript and check it against the eager model."""
    import ase.io
    import numpy as np

    from mlip.data import open_dataset

    run_dir = summary["run_dir"]
    checkpoint = summary["best"] or summary["last"]
    quiet_flag = ["-q"] if quiet else []
    test = open_dataset(test_file)
    frames = [test[i].to_ase() for i in range(0, 80, 10)]
    for atoms in frames:
        atoms.calc = None
    ase.io.write(os.path.join(run_dir, "ethanol_test.extxyz"), frames)
    print(f"\nmlip quickstart: relaxing {len(frames)} test_01 structures in one batch (mlip relax)")
    code = main(["relax", os.path.join(run_dir, "ethanol_test.extxyz"), checkpoint, "--fmax", "0.01", "--steps",
                 "1000", "--out", os.path.join(run_dir, "relax"), *quiet_flag])
    print("\nmlip quickstart: 0.5 ps of NVT (Langevin, 300 K, 0.5 fs) from the first relaxed structure (mlip md)")
    relaxed = os.path.join(run_dir, "relax", "relaxed.extxyz")
    code = max(code, main(["md", f"{relaxed}", checkpoint, "--ensemble", "nvt-langevin", "--timestep", "0.5",
                           "--steps", "1000", "--temperature", "300", "--out", os.path.join(run_dir, "md"),
                           *quiet_flag]))
    print("\nmlip quickstart: exporting to TorchScript (mlip export) and checking it against the eager model")
    exported = os.path.join(run_dir, "model.pt")
    code = max(code, main(["export", checkpoint, "--format", "torchscript", "--out", exported]))
    from mlip.loading import load
    from mlip.calculator import MLIPCalculator

    atoms = ase.io.read(relaxed, index=0)
    results = []
    for model in (load(checkpoint), load(exported)):
        atoms.calc = MLIPCalculator(model)
        results.append((atoms.get_potential_energy(), atoms.get_forces()))
    difference = max(abs(results[0][0] - results[1][0]), float(np.abs(results[0][1] - results[1][1]).max()))
    print(f"exported vs eager on a relaxed structure: largest difference {difference:.2e} (eV, eV/Å)")
    print(f"\ndone: {run_dir} holds the checkpoints, plots (learning curve, parity), relax/, md/ (md.png) "
          "and model.pt")
    return code


def cmd_prepare(args) -> int:
    from mlip.data import open_dataset, write_prepared

    options = _parse_options(args.option)
    if args.skip_bad:
        options["on_error"] = "skip"
    ds = open_dataset(args.source, format=args.format, **options)
    meta = write_prepared(ds, args.out, cutoff=args.cutoff, overwrite=args.overwrite, progress=not args.quiet,
                          source=os.path.abspath(args.source))
    stats = meta["statistics"]
    print(f"wrote {args.out}: {meta['n_structures']} structures, {meta['n_atoms']} atoms in {meta['seconds']} s")
    print(f"  elements {stats['elements']}, avg neighbours at {args.cutoff:g} Å: {stats['avg_num_neighbors']:.2f}, "
          f"force rms {stats['force_rms']}")
    print(f"  reference energies (eV): { {z: round(e, 4) for z, e in stats['reference_energies'].items()} }")
    if stats.get("pair_min_distance"):
        from mlip.data.statistics import format_pair_distances

        print(f"  shortest distance of each element pair (Å): {format_pair_distances(stats['pair_min_distance'])}")
    return 0


def cmd_train(args) -> int:
    from mlip.train.run import compose, train

    train(compose(args.overrides))
    return 0


def cmd_eval(args) -> int:
    from mlip.train.run import compose, evaluate

    evaluate(args.checkpoint, compose(args.overrides), out=args.out, split=args.split)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlip", description="Machine-learned interatomic potentials.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a potential from the Hydra configs (configs/)")
    p.add_argument("overrides", nargs="*", help="key=value or group=option, e.g. experiment=quickstart")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="metric table and parity plot of a checkpoint on a data split")
    p.add_argument("checkpoint", help="training checkpoint or model file")
    p.add_argument("overrides", nargs="*", help="data=... and other config overrides")
    p.add_argument("--split", default="test", help="test (default), val or train")
    p.add_argument("--out", default=None, help="parity plot path")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("info", help="read datasets, build graphs, print a statistics table")
    p.add_argument("paths", nargs="+", help="dataset files or directories")
    p.add_argument("--format", default=None, help="reader format (guessed from the path if omitted)")
    p.add_argument("--cutoff", type=float, default=5.0, help="graph cutoff, Å")
    p.add_argument("-o", "--option", action="append", help="reader option key=value (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("quickstart", help="the bundled-data walk-through (docs/quickstart.md)")
    p.add_argument("overrides", nargs="*", help="training config overrides, e.g. trainer.max_epochs=5")
    p.add_argument("--data", default=None, help="the bundled data folder (default: the samples shipped with mlip)")
    p.add_argument("--data-only", action="store_true", help="only read the datasets and print the table")
    p.add_argument("--cutoff", type=float, default=5.0, help="graph cutoff, Å")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("prepare", help="convert any source into mlip's fast memory-mapped format")
    p.add_argument("source", help="dataset file or directory")
    p.add_argument("out", help="output directory")
    p.add_argument("--format", default=None, help="reader format (guessed from the path if omitted)")
    p.add_argument("--cutoff", type=float, default=5.0, help="cutoff for the average neighbour count, Å")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--skip-bad", action="store_true", help="skip bad frames (and report them) instead of stopping")
    p.add_argument("-o", "--option", action="append", help="reader option key=value (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prepare)

    from mlip.integrations.lammps.build import add_parser as add_lammps_plugin
    from mlip.simulate.commands import add_parsers
    from mlip.verify import add_parser as add_verify

    add_parsers(sub)
    add_verify(sub)
    add_lammps_plugin(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlip.data import DataError

    try:
        return args.func(args)
    except DataError as err:
        print(f"mlip {args.command}: bad input: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"mlip {args.command}: {err}", file=sys.stderr)
        return 2

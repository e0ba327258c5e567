"""`mlip relax`, `mlip md`, `mlip forecast` and `mlip export`: argument parsers and what each command does."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path


def _model(path: str, device: str, dtype: str | None):
    """What mlip.load reads; comma-separated files are a committee of them."""
    import torch

    from mlip.loading import load

    model = load(path.split(",") if "," in path else path, device=device)
    if dtype is not None and not hasattr(model, "kind"):  # exported files keep their dtype
        model = model.to(getattr(torch, dtype))
    return model


def cmd_relax(args) -> int:
    from mlip.simulate.relax import relax
    from mlip.simulate.structures import read_structures, write_atomic

    structures = read_structures(args.structures)
    model = _model(args.checkpoint, args.device, args.dtype)
    if args.max_uncertainty is not None and not getattr(model, "provides_uncertainty", False):
        raise SystemExit("mlip relax: --max-uncertainty needs a model with an uncertainty (a committee: "
                         "mlip train ... ensemble=K, or comma-separated model files); this one gives none")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(optimizer=args.optimizer, fmax=args.fmax, steps=args.steps, relax_cell=args.cell,
                   fix_symmetry=args.symmetry, pressure=args.pressure, device=args.device,
                   trajectory_dir=str(out / "trajectories") if args.trajectory else None, progress=not args.quiet)
    print(f"mlip relax: {len(structures)} structures, {args.optimizer}, fmax {args.fmax} eV/Å, at most {args.steps} "
          f"steps{', cell relaxed' if args.cell else ''}{', symmetry fixed' if args.symmetry else ''}"
          f"{f', {args.pressure} GPa' if args.pressure else ''}; {'one by one' if args.one_by_one else 'batched'}")
    start = time.perf_counter()
    results = relax(structures, model, batched=not args.one_by_one, **options)
    seconds = time.perf_counter() - start
    write_atomic(out / "relaxed.extxyz", [r.atoms for r in results], format="extxyz")
    table = out / "relax.csv"
    tmp = table.with_name(f".{table.name}.tmp-{os.getpid()}")
    uncertain = "max_forces_std" in results[0].extra
    limit = args.max_uncertainty
    flagged = [r.name for r in results if limit is not None and r.extra["max_forces_std"] > limit]
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "natoms", "energy_eV", "energy_per_atom_eV", "fmax_eV_A", "steps", "converged",
                         "volume_A3"] + (["max_forces_std_eV_A", "uncertain"] if uncertain else []))
        for r in results:
            writer.writerow([r.name, len(r.atoms), f"{r.energy:.6f}", f"{r.energy / len(r.atoms):.6f}",
                             f"{r.fmax:.5f}", r.steps, r.converged,
                             f"{r.atoms.cell.volume:.4f}" if r.atoms.pbc.all() else ""]
                            + ([f"{r.extra['max_forces_std']:.5f}", r.name in flagged] if uncertain else []))
    os.replace(tmp, table)
    width = max(len(r.name) for r in results)
    print(f"{'structure':<{width}}  {'atoms':>6}  {'energy eV':>14}  {'fmax eV/Å':>10}  {'steps':>6}  converged"
          + ("  force std eV/Å" if uncertain else ""))
    for r in results:
        print(f"{r.name:<{width}}  {len(r.atoms):>6}  {r.energy:>14.5f}  {r.fmax:>10.4f}  {r.steps:>6}  "
              f"{str(r.converged):<9}" + (f"  {r.extra['max_forces_std']:>14.4f}" + ("  UNCERTAIN" if r.name in flagged
                                                                                    else "") if uncertain else ""))
    if flagged:
        print(f"mlip relax: {len(flagged)} structure(s) relaxed to where the largest per-atom force uncertainty "
              f"exceeds {limit} eV/Å (outside what the model knows; do not trust them): {', '.join(flagged)}")
    unconverged = sum(not r.converged for r in results)
    print(f"{len(results) - unconverged}/{len(results)} converged in {seconds:.1f} s; wrote {out / 'relaxed.extxyz'}, "
          f"{table}" + (f", trajectories in {out / 'trajectories'}" if args.trajectory else ""))
    return 0 if unconverged == 0 and not flagged else 1


def cmd_md(args) -> int:
    from mlip.calculator import MLIPCalculator
    from mlip.simulate.md import Limits, run_md
    from mlip.simulate.structures import read_structures

    if args.restart is None:
        structures = read_structures(args.structure)
        if len(structures) != 1:
            print(f"mlip md: {args.structure} holds {len(structures)} structures; the first is used")
        atoms = structures[0][1]
    else:
        atoms = None
    model = _model(args.checkpoint, args.device, args.dtype)
    limits = Limits(max_force=args.max_force, min_distance=args.min_distance, max_temperature=args.max_temperature,
                    max_uncertainty=args.max_uncertainty)
    result = run_md(atoms, MLIPCalculator(model, device=args.device), ensemble=args.ensemble, timestep=args.timestep,
                    steps=args.steps, temperature=args.temperature, pressure=args.pressure, seed=args.seed,
                    out_dir=args.out, trajectory_interval=args.trajectory_interval, log_interval=args.log_interval,
                    restart_interval=args.restart_interval, friction=args.friction, tdamp=args.tdamp,
                    pdamp=args.pdamp, limits=limits, restart=args.restart, progress=not args.quiet)
    if result.closest:
        print(f"mlip md: closest approach to the training data's shortest distances at {result.closest}")
    if result.stopped:
        print(f"mlip md: stopped: {result.stopped}")
        return 3
    print(f"mlip md: {result.steps} steps ({result.steps * args.timestep / 1000:.3f} ps) in {result.seconds:.1f} s: "
          f"{result.ns_per_day:.3f} ns/day; wrote {args.out}/trajectory.extxyz, md.csv, restart.extxyz")
    return 0


def cmd_forecast(args) -> int:
    from mlip.simulate.forecast import ForecastLimits, run_forecast
    from mlip.simulate.structures import read_structures

    model = _model(args.model, args.device, args.dtype)
    if not hasattr(model, "interval"):
        print(f"mlip forecast: {args.model} is not a forecaster (train one with `mlip train experiment=forecast`)")
        return 2
    structures = read_structures(args.restart or args.start)
    limits = ForecastLimits(low=args.band[0], high=args.band[1], window=args.window, min_distance=args.min_distance)
    results = run_forecast(structures, model, steps=args.steps, temperature=args.temperature or None, tau=args.tau,
                           out_dir=args.out, seed=args.seed, limits=limits,
                           trajectory_interval=args.trajectory_interval, log_interval=args.log_interval,
                           restart_interval=args.restart_interval, restart=bool(args.restart),
                           progress=not args.quiet, device=args.device)
    interval = float(model.interval)
    width = max(9, *(len(r.name) for r in results))
    print(f"{'structure':<{width}}  {'steps':>7}  {'ps':>8}  {'T mean K':>9}  {'T std K':>8}  {'N_f':>5}  ns/day")
    for r in results:
        print(f"{r.name:<{width}}  {r.steps:>7}  {r.simulated_ps:>8.2f}  {r.mean_temperature:>9.1f}  "
              f"{r.std_temperature:>8.1f}  {r.degrees_of_freedom:>5}  {r.ns_per_day:.3g}")
    stopped = [r for r in results if r.stopped]
    for r in stopped:
        print(f"mlip forecast: {r.name} stopped: {r.stopped}")
    print(f"{len(results) - len(stopped)}/{len(results)} ran {args.steps} steps of {interval:g} fs; wrote "
          f"trajectory.extxyz, forecast.csv, forecast.png, restart.extxyz in {args.out}")
    return 3 if stopped else 0


def cmd_export(args) -> int:
    from mlip.export import export

    model = _model(args.checkpoint, args.device, args.dtype)
    suffix = {"torchscript": ".pt", "export": ".pt2", "aoti": ".aoti.pt2"}[args.format]
    out = args.out or str(Path(args.checkpoint).with_suffix("")) + suffix
    start = time.perf_counter()
    export(model, out, args.format)
    print(f"mlip export: wrote {out} ({args.format}, {model.dtype}) in {time.perf_counter() - start:.1f} s")
    if args.format == "torchscript":
        print(f"  load it: import mlip, torch; m = torch.jit.load({out!r}); "
              "out = m(pos, atomic_numbers, cell, pbc)  -> energy, forces, stress\n"
              "  without mlip: torch.ops.load_library(<the path `python -c \"from mlip.export.native import "
              "library; print(library())\"` prints>) first")
    return 0


def add_parsers(sub) -> None:
    from mlip.simulate.md import ENSEMBLES
    from mlip.simulate.relax import OPTIMIZERS

    p = sub.add_parser("relax", help="relax structures (any ASE/pymatgen format, files or directories)")
    p.add_argument("structures", nargs="+", help="structure files or directories")
    p.add_argument("checkpoint", help="training checkpoint, model file, exported model, committee file, or "
                                      "comma-separated model files (a committee)")
    p.add_argument("--optimizer", default="FIRE", choices=OPTIMIZERS)
    p.add_argument("--fmax", type=float, default=0.05, help="force convergence, eV/Å (default 0.05)")
    p.add_argument("--steps", type=int, default=500, help="most optimiser steps per structure")
    p.add_argument("--cell", action="store_true", help="relax the cell too (FrechetCellFilter)")
    p.add_argument("--symmetry", action="store_true", help="keep the space group (FixSymmetry)")
    p.add_argument("--pressure", type=float, default=0.0, help="external pressure with --cell, GPa")
    p.add_argument("--trajectory", action="store_true", help="write each structure's trajectory")
    p.add_argument("--one-by-one", action="store_true", help="ASE's loop per structure instead of batched calls")
    p.add_argument("--max-uncertainty", type=float, default=None,
                   help="flag structures whose largest per-atom force uncertainty exceeds this, eV/Å (a committee)")
    p.add_argument("--out", default="relaxed", help="output directory (relaxed.extxyz, relax.csv)")
    _device_options(p)
    p.set_defaults(func=cmd_relax)

    p = sub.add_parser("md", help="molecular dynamics (NVE, NVT, NPT) with blow-up guards and restarts")
    p.add_argument("structure", nargs="?", help="starting structure (not needed with --restart)")
    p.add_argument("checkpoint", help="training checkpoint, model file, exported model, committee file, or "
                                      "comma-separated model files (a committee)")
    p.add_argument("--ensemble", default="nvt-langevin", choices=ENSEMBLES)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--steps", type=int, default=1000, help="total steps (a restart continues to this count)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (also the initial velocities)")
    p.add_argument("--pressure", type=float, default=0.0, help="GPa (NPT)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs")
    p.add_argument("--tdamp", type=float, default=100.0, help="thermostat time constant, fs")
    p.add_argument("--pdamp", type=float, default=1000.0, help="barostat time constant, fs")
    p.add_argument("--trajectory-interval", type=int, default=10)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--restart-interval", type=int, default=100)
    p.add_argument("--max-force", type=float, default=50.0, help="stop above this force, eV/Å")
    p.add_argument("--min-distance", type=float, default=0.5, help="stop when atoms come closer, Å")
    p.add_argument("--max-temperature", type=float, default=None, help="stop above this temperature, K")
    p.add_argument("--max-uncertainty", type=float, default=None,
                   help="stop when the largest per-atom force uncertainty exceeds this, eV/Å (a committee)")
    p.add_argument("--restart", default=None, help="continue from a restart file (md/restart.extxyz)")
    p.add_argument("--out", default="md", help="output directory")
    _device_options(p)
    p.set_defaults(func=cmd_md)

    p = sub.add_parser("forecast", help="force-free MD: roll a trained forecaster forward (batched, CSVR thermostat)")
    p.add_argument("model", help="a forecaster: training checkpoint, model file or exported TorchScript file")
    p.add_argument("start", nargs="*", help="starting structures (files, directories, file@INDEX); momenta in them "
                                            "are kept, else Maxwell-Boltzmann velocities at --temperature")
    p.add_argument("--steps", type=int, default=1000, help="forecast steps, each the model's interval (a restart "
                                                           "continues to this count)")
    p.add_argument("--temperature", type=float, default=300.0, help="CSVR thermostat target, K (0: none)")
    p.add_argument("--tau", type=float, default=100.0, help="thermostat time constant, fs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--band", type=float, nargs=2, default=(0.5, 1.5), metavar=("LOW", "HIGH"),
                   help="stop a structure when its mean temperature over --window steps leaves LOW..HIGH x the target")
    p.add_argument("--window", type=int, default=None, help="steps of the temperature guard's mean (default: 1 ps)")
    p.add_argument("--min-distance", type=float, default=0.5, help="stop a structure when atoms come closer, Å")
    p.add_argument("--trajectory-interval", type=int, default=1)
    p.add_argument("--log-interval", type=int, default=1)
    p.add_argument("--restart-interval", type=int, default=100)
    p.add_argument("--restart", nargs="+", default=None, help="continue from restart files (forecast/restart.extxyz)")
    p.add_argument("--out", default="forecast", help="output directory")
    _device_options(p)
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("export", help="TorchScript / torch.export / AOTInductor file of a model")
    p.add_argument("checkpoint", help="training checkpoint or model file")
    p.add_argument("--format", default="torchscript", choices=("torchscript", "export", "aoti"))
    p.add_argument("--out", default=None, help="output file (default: beside the checkpoint)")
    _device_options(p)
    p.set_defaults(func=cmd_export)


def _device_options(p) -> None:
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--dtype", default=None, choices=("float32", "float64"), help="compute dtype (default: model's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

"""Structure relaxation with ASE's optimisers, one by one or many structures in one model call.

Both paths run the same ASE optimiser objects (FIRE, BFGS, LBFGS) on the same optimisables
(the atoms, or a FrechetCellFilter for the cell, with an optional FixSymmetry constraint and a
scalar pressure). One by one, each structure has its own MLIPCalculator. Batched, every active
structure is evaluated in one model call per step, the results are handed to its optimiser, and
each optimiser takes its own step; a converged structure drops out of the batch. The algorithm and
its state are ASE's in both, so both give the same relaxed structures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlip.calculator import UNCERTAINTIES, BatchEvaluator

OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


def optimizer_class(name: str):
    from ase.optimize import BFGS, FIRE, LBFGS

    classes = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}
    if name.upper() not in classes:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return classes[name.upper()]


@dataclass
class RelaxResult:
    """name; relaxed atoms (with energy, forces, stress attached); energy eV; fmax eV/Å (ASE's
    measure over the optimised degrees of freedom); optimiser steps; converged; wall seconds;
    extra: max_forces_std (eV/Å, the relaxed structure's largest per-atom force uncertainty) for a
    model with an uncertainty."""

    name: str
    atoms: Atoms
    energy: float
    fmax: float
    steps: int
    converged: bool
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def optimizable(atoms: Atoms, relax_cell: bool = False, fix_symmetry: bool = False, pressure: float = 0.0):
    """What the optimiser moves: the atoms, or a FrechetCellFilter (positions and cell) at
    ``pressure`` GPa; with ``fix_symmetry`` a FixSymmetry constraint keeps the space group."""
    if fix_symmetry:
        from ase.constraints import FixSymmetry

        atoms.set_constraint(FixSymmetry(atoms))
    if relax_cell:
        from ase.filters import FrechetCellFilter

        return FrechetCellFilter(atoms, scalar_pressure=pressure * units.GPa)
    if pressure:
        raise ValueError("a pressure needs cell relaxation (relax_cell=True / --cell)")
    return atoms


def single_point(atoms: Atoms, results: dict) -> SinglePointCalculator:
    """A SinglePointCalculator holding ``results``, uncertainties included (ASE's constructor takes
    only its own property names)."""
    known = {k: v for k, v in results.items() if k not in UNCERTAINTIES}
    calc = SinglePointCalculator(atoms, **known)
    calc.results.update({k: v for k, v in results.items() if k in UNCERTAINTIES})
    return calc


def _finish(name, atoms, opt, converged, seconds) -> RelaxResult:
    gradient = opt.optimizable.get_gradient()
    extra = {}
    spread = atoms.calc.results.get("forces_std")
    if spread is not None:  # a model with an uncertainty: the largest per-atom force std, eV/Å
        extra["max_forces_std"] = float(np.max(spread))
    return RelaxResult(name=name, atoms=atoms, energy=float(atoms.get_potential_energy()),
                       fmax=float(opt.optimizable.gradient_norm(gradient)), steps=int(opt.nsteps),
                       converged=bool(converged), seconds=seconds, extra=extra)


def relax_one_by_one(structures: Sequence[Tuple[str, Atoms]], model, optimizer: str = "FIRE", fmax: float = 0.05,
                     steps: int = 500, relax_cell: bool = False, fix_symmetry: bool = False, pressure: float = 0.0,
                     trajectory_dir: Optional[str] = None, device: str = "cpu",
                     progress: bool = True) -> List[RelaxResult]:
    """The plain ASE loop: each structure with its own calculator and ``opt.run``."""
    from mlip.progress import progress as tqdm

    from mlip.calculator import MLIPCalculator

    calc = MLIPCalculator(model, device=device)
    cls = optimizer_class(optimizer)
    results = []
    for name, atoms in tqdm(structures, desc="relax (one by one)", unit="structure", disable=not progress):
        atoms = atoms.copy()
        atoms.calc = calc
        start = time.perf_counter()
        opt = cls(optimizable(atoms, relax_cell, fix_symmetry, pressure), logfile=None,
                  trajectory=_trajectory_path(trajectory_dir, name))
        converged = opt.run(fmax=fmax, steps=steps)
        results.append(_finish(name, atoms, opt, converged, time.perf_counter() - start))
        atoms.calc = single_point(atoms, calc.results)
    return results


def relax_batched(structures: Sequence[Tuple[str, Atoms]], model, optimizer: str = "FIRE", fmax: float = 0.05,
                  steps: int = 500, relax_cell: bool = False, fix_symmetry: bool = False, pressure: float = 0.0,
                  trajectory_dir: Optional[str] = None, device: str = "cpu", progress: bool = True,
                  max_atoms: int = 20000) -> List[RelaxResult]:
    """All structures advance together: one model call per step for all that have not converged."""
    from mlip.progress import progress as tqdm

    cls = optimizer_class(optimizer)
    evaluate = BatchEvaluator(model, device, max_atoms)
    names = [name for name, _ in structures]
    frames = [atoms.copy() for _, atoms in structures]
    opts = [cls(optimizable(atoms, relax_cell, fix_symmetry, pressure), logfile=None,
                trajectory=_trajectory_path(trajectory_dir, name)) for name, atoms in zip(names, frames)]
    for opt in opts:
        opt.fmax = fmax  # what Optimizer.run sets
    results: List[Optional[RelaxResult]] = [None] * len(frames)
    active = list(range(len(frames)))
    start = time.perf_counter()
    bar = tqdm(total=len(frames), desc="relax (batched)", unit="structure", disable=not progress)
    while active:
        for i, r in zip(active, evaluate([frames[i] for i in active])):
            frames[i].calc = single_point(frames[i], r)
        still = []
        for i in active:
            opt = opts[i]
            opt.call_observers()  # the trajectory frame of the current positions (as ASE's run writes it)
            converged = opt.converged()
            if converged or opt.nsteps >= steps:
                results[i] = _finish(names[i], frames[i], opt, converged, time.perf_counter() - start)
                bar.update(1)
                continue
            opt.step()
            opt.nsteps += 1
            still.append(i)
        active = still
        bar.set_postfix(active=len(active), step=max((opts[i].nsteps for i in active), default=0))
    bar.close()
    return results


def relax(structures, model, batched: bool = True, **options) -> List[RelaxResult]:
    """Relax (name, Atoms) pairs; ``batched`` chooses :func:`relax_batched` or :func:`relax_one_by_one`."""
    return (relax_batched if batched else relax_one_by_one)(structures, model, **options)


def _trajectory_path(directory: Optional[str], name: str) -> Optional[str]:
    if directory is None:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    return str(Path(directory) / f"{name.replace('/', '_').replace(':', '_')}.traj")

"""The structures the physics suite runs on: a molecule (bare, and in a vacuum box without periodic
boundaries), a cell thinner than any cutoff, a triclinic oxide, a slab (vacuum along z); and a model made non-trivial for testing (random weights where a model starts at zero,
per-element reference energies, a scale and a shift)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from mlip.data import AtomicData

# eV; a made-up but plausible table, so that energies are of realistic size (round-off included)
REFERENCE_ENERGIES = {1: -13.6, 6: -1029.5, 8: -2041.8, 14: -107.2, 29: -1352.0, 72: -401.3}


def rattled(atoms, seed, scale=0.05):
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(scale=scale, size=atoms.positions.shape)
    return atoms


def ethanol():
    from ase.build import molecule

    return rattled(molecule("CH3CH2OH"), 0)


def water():
    from ase.build import molecule

    return rattled(molecule("H2O"), 4)


def boxed_ethanol():
    """The ethanol of :func:`ethanol` centred in a 6 Å vacuum box, pbc False: how ASE
    (``atoms.center(vacuum=...)``) and extxyz files (``Lattice=... pbc="F F F"``) carry molecules."""
    atoms = ethanol()
    atoms.center(vacuum=6.0)
    return atoms


def silicon_primitive():
    """2 atoms in a cell thinner than any cutoff used: many periodic images."""
    from ase.build import bulk

    return rattled(bulk("Si", "diamond", a=5.43), 1)


def triclinic_oxide():
    from ase import Atoms

    cell = np.array([[4.1, 0.0, 0.0], [0.9, 3.8, 0.0], [-0.6, 0.7, 4.4]])
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.1], [0.25, 0.7, 0.55], [0.8, 0.3, 0.6]])
    return rattled(Atoms("HfO3", scaled_positions=frac, cell=cell, pbc=True), 2)


def copper_slab():
    from ase.build import fcc111

    return rattled(fcc111("Cu", size=(2, 2, 2), vacuum=5.0), 3)


STRUCTURES = {"ethanol": ethanol, "si2": silicon_primitive, "triclinic": triclinic_oxide, "slab": copper_slab}
BOXED = {"boxed_ethanol": boxed_ethanol}  # the same molecule as "ethanol": not in STRUCTURES, checked apart


def data(name, dtype=None) -> AtomicData:
    d = AtomicData.from_ase({**STRUCTURES, **BOXED}[name]())
    if dtype is not None:
        d.pos, d.cell = d.pos.to(dtype), d.cell.to(dtype)
    return d


def with_random_zero_weights(model, dtype=torch.float64, seed: Optional[int] = None):
    """``model`` in ``dtype`` with N(0, 0.3²) values in every weight that starts at zero (a readout that
    starts at zero would make every check trivial); ``seed``: reseed torch first."""
    if seed is not None:
        torch.manual_seed(seed)
    model = model.to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.normal_(std=0.3)
    return model


def randomized(model, dtype=torch.float64, seed: Optional[int] = None, force_rms: float = 1.0):
    """``model`` in ``dtype``, eval mode, with random values in every weight that starts at zero (a
    readout that starts at the reference energies would make every check trivial), and statistics
    set: REFERENCE_ENERGIES, shift -0.2, and the scale that gives the learned forces on ethanol an
    RMS of ``force_rms`` eV/Å (as training's force-RMS scale does: random energies of a physical
    size, whatever the architecture's raw output). ``seed``: reseed torch first (None: go on from the
    current state)."""
    model = with_random_zero_weights(model, dtype, seed)
    model.set_statistics(REFERENCE_ENERGIES, scale=1.0, shift=-0.2)
    model.eval()
    prior, model.repulsion = model.repulsion, None
    try:
        raw = float(model(data("ethanol"), compute_stress=False)["forces"].detach().pow(2).mean().sqrt())
    finally:
        model.repulsion = prior
    if raw > 0:
        model.scale.fill_(force_rms / raw)
    return model

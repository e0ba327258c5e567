"""Test structures for the physics suite (a molecule, small and triclinic crystals, a slab) and
the random-weight models it runs on."""

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule

from mlip.data import AtomicData
from mlip.models import build


def rattled(atoms, seed, scale=0.05):
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(scale=scale, size=atoms.positions.shape)
    return atoms


def ethanol():
    return rattled(molecule("CH3CH2OH"), 0)


def silicon_primitive():
    """2 atoms in a cell thinner than any cutoff used: many periodic images."""
    return rattled(bulk("Si", "diamond", a=5.43), 1)


def triclinic_oxide():
    cell = np.array([[4.1, 0.0, 0.0], [0.9, 3.8, 0.0], [-0.6, 0.7, 4.4]])
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.1], [0.25, 0.7, 0.55], [0.8, 0.3, 0.6]])
    return rattled(Atoms("HfO3", scaled_positions=frac, cell=cell, pbc=True), 2)


def copper_slab():
    return rattled(fcc111("Cu", size=(2, 2, 2), vacuum=5.0), 3)


STRUCTURES = {"ethanol": ethanol, "si2": silicon_primitive, "triclinic": triclinic_oxide, "slab": copper_slab}


def data(name, dtype=None):
    d = AtomicData.from_ase(STRUCTURES[name]())
    if dtype is not None:
        d.pos, d.cell = d.pos.to(dtype), d.cell.to(dtype)
    return d


REFERENCE_ENERGIES = {1: -13.6, 6: -1029.5, 8: -2041.8, 14: -107.2, 29: -1352.0, 72: -401.3}


def make(name, dtype=torch.float64, **overrides):
    """The "small" preset with random weights everywhere: layers a model initialises to zero (a
    readout that starts at the reference energies) would otherwise make every check trivial."""
    torch.manual_seed(0)
    model = build(name, preset="small", **overrides).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            if not bool(p.any()):
                p.normal_(std=0.3)
    model.set_statistics(REFERENCE_ENERGIES, scale=1.7, shift=-0.2)
    return model.eval()

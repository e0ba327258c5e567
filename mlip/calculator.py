"""The ASE adapter: BatchEvaluator (energies, forces, stresses of many ase.Atoms in few model calls)
and MLIPCalculator (any mlip Potential as an ASE calculator, one structure through the same
evaluator). Relaxation and MD use these; nothing else converts between Atoms and the model."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlip.allocator import keep_freed_memory
from mlip.data.atomic_data import CHARGE_KEYS, SPIN_KEYS, AtomicData


def _info_int(atoms, keys, default: int) -> int:
    for key in keys:
        if key in atoms.info and atoms.info[key] is not None:
            return int(atoms.info[key])
    return default


def atoms_to_data(atoms) -> AtomicData:
    """The model's input for ``atoms`` (positions, numbers, cell, pbc, charge and spin from info)."""
    return AtomicData.build(pos=atoms.get_positions(), atomic_numbers=atoms.get_atomic_numbers(),
                            cell=np.asarray(atoms.get_cell()), pbc=atoms.get_pbc(),
                            charge=_info_int(atoms, CHARGE_KEYS, 0), spin=_info_int(atoms, SPIN_KEYS, 1))


def voigt(stress: np.ndarray) -> np.ndarray:
    """(3,3) -> ASE's Voigt order xx, yy, zz, yz, xz, xy."""
    s = stress.reshape(3, 3)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


# what a model with an uncertainty adds (mlip.uncertainty): per structure, per atom, per structure
UNCERTAINTIES = ("energy_std", "forces_std", "stress_std")


class BatchEvaluator:
    """Energies, forces and stresses of many structures in as few model calls as possible.

    ``max_atoms`` bounds the atoms in one call (memory); ``__call__(list of Atoms)`` returns
    a list of dicts (energy eV, forces (N,3) eV/Å, stress Voigt eV/Å^3, and for a model with an
    uncertainty energy_std eV, forces_std (N,) eV/Å per atom, stress_std Voigt eV/Å^3).
    """

    def __init__(self, model, device: str = "cpu", max_atoms: int = 20000):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # each call's large tensors reuse the last call's pages (mlip.allocator)
        self.max_atoms = max_atoms
        self.calls = 0

    def __call__(self, frames: Sequence[Atoms]) -> List[dict]:
        from mlip.graph import collate

        out: List[dict] = []
        start = 0
        while start < len(frames):
            stop, atoms_in = start, 0
            while stop < len(frames) and (stop == start or atoms_in + len(frames[stop]) <= self.max_atoms):
                atoms_in += len(frames[stop])
                stop += 1
            chunk = frames[start:stop]
            batch = collate([atoms_to_data(a) for a in chunk], cutoff=self.model.cutoff,
                            max_neighbors=self.model.max_neighbors).to(self.device)
            result = self.model(batch, compute_forces=True, compute_stress=True)
            self.calls += 1
            energy = result["energy"].detach().double().cpu().numpy()
            forces = result["forces"].detach().double().cpu().numpy()
            stress = result["stress"].detach().double().cpu().numpy()
            offsets = np.cumsum([0] + [len(a) for a in chunk])
            spread = {key: result[key].detach().double().cpu().numpy() for key in UNCERTAINTIES if key in result}
            for k in range(len(chunk)):
                one = {"energy": float(energy[k]), "forces": forces[offsets[k]:offsets[k + 1]],
                       "stress": voigt(stress[k])}
                if "energy_std" in spread:
                    one["energy_std"] = float(spread["energy_std"][k])
                if "forces_std" in spread:
                    one["forces_std"] = spread["forces_std"][offsets[k]:offsets[k + 1]]
                if "stress_std" in spread:
                    one["stress_std"] = voigt(spread["stress_std"][k])
                out.append(one)
            start = stop
        return out


class MLIPCalculator(Calculator):
    """Energy, free energy, forces and stress (Voigt, ASE sign) from an mlip Potential.

    Args:
        model_or_path: a Potential or a Committee, or what :func:`mlip.load` reads (a file, or a
            list of files: a committee). A model with an uncertainty also fills ``results`` with
            ``energy_std`` (eV), ``forces_std`` ((N,) eV/Å per atom) and ``stress_std`` (Voigt).
        device: torch device for the model and the inputs.
        dtype: compute in this float dtype (default: the model's).
    Charge and spin multiplicity come from ``atoms.info`` ("charge" / "spin", or "total_charge" /
    "multiplicity"); a change of either triggers a new calculation, like positions or cell.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model_or_path, device: str = "cpu", dtype: torch.dtype | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model_or_path, torch.nn.Module):
            model = model_or_path
        else:
            from mlip.loading import load

            model = load(model_or_path, device=device)
        self.evaluator = BatchEvaluator(model if dtype is None else model.to(dtype), device)
        self.device, self.model = self.evaluator.device, self.evaluator.model
        if getattr(self.model, "provides_uncertainty", False):
            self.implemented_properties = [*type(self).implemented_properties, *UNCERTAINTIES]
        self._charge_spin = None

    def check_state(self, atoms, tol: float = 1e-15):
        changes = super().check_state(atoms, tol)
        charge_spin = (_info_int(atoms, CHARGE_KEYS, 0), _info_int(atoms, SPIN_KEYS, 1))
        if charge_spin != self._charge_spin and "charge_spin" not in changes:
            changes.append("charge_spin")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes + ["charge_spin"]):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        self._charge_spin = (_info_int(atoms, CHARGE_KEYS, 0), _info_int(atoms, SPIN_KEYS, 1))
        # always all three: one forward and backward gives them together, and ASE asks for them one
        # by one (stress is zero for structures without a volume)
        (result,) = self.evaluator([atoms])
        self.results.update(result, free_energy=result["energy"])

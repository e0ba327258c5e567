"""MLIPCalculator: any mlip Potential as an ASE calculator."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

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


class MLIPCalculator(Calculator):
    """Energy, free energy, forces and stress (Voigt, ASE sign) from an mlip Potential.

    Args:
        model_or_path: a Potential, or a file :func:`mlip.load` reads.
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
            from mlip import load

            model = load(model_or_path, device=device)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if dtype is not None:
            self.model = self.model.to(dtype)
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
        data = atoms_to_data(atoms).to(self.device)
        # always all three: one forward and backward gives them together, and ASE asks for them one
        # by one (stress is zero for structures without a volume)
        out = self.model(data, compute_forces=True, compute_stress=True)
        energy = float(out["energy"].detach().reshape(-1)[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = out["forces"].detach().cpu().double().numpy()
        self.results["stress"] = voigt(out["stress"].detach().cpu().double().numpy())

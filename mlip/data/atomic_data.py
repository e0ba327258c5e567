"""AtomicData: the one record every reader produces and every model consumes.

Fields (N atoms, E edges; float fields are float64 as read, models cast them):

    pos (N,3) Å · atomic_numbers (N,) long · cell (1,3,3) Å, rows are lattice vectors ·
    pbc (1,3) bool · natoms (1,) long · charge (1,) long, e · spin (1,) long, multiplicity 2S+1
    optional targets: energy (1,) eV · forces (N,3) eV/Å · stress (1,3,3) eV/Å^3, ASE sign
    optional per atom: fixed (N,) bool · tags (N,) long · magmom (N,) μB
    graph (written by mlip.graph.build_graph): edge_index (2,E) [source, target] ·
    cell_shifts (E,3) integer image offsets, edge vector = pos[t] - pos[s] + cell_shifts @ cell
    bookkeeping: idx (1,) long, the frame's index in its dataset; name (str), its id in the source.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from mlip.data.errors import DataError

ENERGY_KEYS = ("energy", "REF_energy", "DFT_energy", "total_energy", "free_energy")
FORCES_KEYS = ("forces", "REF_forces", "DFT_forces", "force")
STRESS_KEYS = ("stress", "REF_stress", "DFT_stress")
CHARGE_KEYS = ("charge", "total_charge", "total_charge_e")
SPIN_KEYS = ("spin", "multiplicity", "spin_multiplicity")

PER_ATOM_FIELDS = ("pos", "atomic_numbers", "forces", "fixed", "tags", "magmom")


def stress_to_3x3(stress, source=None, frame=None) -> np.ndarray:
    """Stress as a 3x3 array from Voigt (xx, yy, zz, yz, xz, xy), 9 values or 3x3."""
    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if s.size == 9:
        return s.reshape(3, 3)
    raise DataError(f"stress has shape {s.shape}; expected 6 (Voigt), 9 or (3,3)", source, frame, "stress")


def _tensor(value, dtype) -> torch.Tensor:
    """A fresh tensor of ``dtype`` from a tensor, a (memory-mapped) array or nested lists."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    return torch.from_numpy(np.array(value, dtype=dtype))


def _as_int(value, key, source, frame) -> int:
    v = float(np.asarray(value).reshape(-1)[0])
    if not np.isfinite(v) or v != round(v):
        raise DataError(f"must be an integer, got {value!r}", source, frame, key)
    return int(round(v))


def _first(mapping: Mapping, keys: Sequence[str]):
    for k in keys:
        if k in mapping and mapping[k] is not None:
            return k, mapping[k]
    return None, None


class AtomicData(Data):
    """One atomic structure (or, collated by torch_geometric, a batch of them). See module doc."""

    def __inc__(self, key: str, value: Any, *args, **kwargs):
        # Only the edge index refers to atoms; nothing else is offset when batching.
        return self.num_nodes if key == "edge_index" else 0

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs):
        return -1 if key == "edge_index" else 0

    @classmethod
    def build(
        cls,
        pos,
        atomic_numbers,
        cell=None,
        pbc=None,
        energy=None,
        forces=None,
        stress=None,
        charge: int = 0,
        spin: int = 1,
        fixed=None,
        tags=None,
        magmom=None,
        idx: int | None = None,
        name: str | None = None,
    ) -> "AtomicData":
        """Make a record from array-likes in mlip units (Å, eV, eV/Å, eV/Å^3 ASE sign)."""
        pos = _tensor(pos, np.float64).reshape(-1, 3)
        n = pos.shape[0]
        z = _tensor(atomic_numbers, np.int64).reshape(-1)
        cell_t = torch.zeros(1, 3, 3, dtype=torch.float64) if cell is None else _tensor(cell, np.float64).reshape(1, 3, 3)
        pbc_arr = np.zeros(3, dtype=bool) if pbc is None else np.broadcast_to(_tensor(pbc, bool).numpy().reshape(-1), (3,))
        fields = dict(
            pos=pos,
            atomic_numbers=z,
            cell=cell_t,
            pbc=torch.as_tensor(pbc_arr.copy()).reshape(1, 3),
            natoms=torch.tensor([n], dtype=torch.long),
            charge=torch.tensor([int(charge)], dtype=torch.long),
            spin=torch.tensor([int(spin)], dtype=torch.long),
        )
        if energy is not None:
            fields["energy"] = _tensor(energy, np.float64).reshape(-1)
        if forces is not None:
            fields["forces"] = _tensor(forces, np.float64)
        if stress is not None:
            fields["stress"] = torch.from_numpy(stress_to_3x3(_tensor(stress, np.float64).numpy())).reshape(1, 3, 3)
        if fixed is not None:
            fields["fixed"] = _tensor(fixed, bool)
        if tags is not None:
            fields["tags"] = _tensor(tags, np.int64)
        if magmom is not None:
            fields["magmom"] = _tensor(magmom, np.float64)
        if idx is not None:
            fields["idx"] = torch.tensor([int(idx)], dtype=torch.long)
        data = cls(**fields)
        if name is not None:
            data.name = str(name)
        return data

    @classmethod
    def from_ase(
        cls,
        atoms,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
        source=None,
        frame=None,
        **extra,
    ) -> "AtomicData":
        """Make a record from an ``ase.Atoms``.

        Targets come from the attached calculator if it has them, else from ``atoms.info`` /
        ``atoms.arrays`` under ``*_key`` (or the usual names: energy, REF_energy, forces, ...).
        Charge and spin (multiplicity) are read from ``atoms.info`` ("charge"/"total_charge",
        "spin"/"multiplicity"), defaulting to 0 and 1. ``FixAtoms`` constraints become ``fixed``.
        """
        info, arrays = atoms.info, atoms.arrays
        calc_results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}

        def pick(key, defaults, store):
            if key is not None:
                if key in store:
                    return store[key]
                if key in calc_results:
                    return calc_results[key]
                raise DataError("missing", source, frame, key)
            found = _first(calc_results, defaults[:1])[1]
            return found if found is not None else _first(store, defaults)[1]

        energy = pick(energy_key, ENERGY_KEYS, info)
        forces = pick(forces_key, FORCES_KEYS, arrays)
        stress = pick(stress_key, STRESS_KEYS, info)
        ck, charge = _first(info, CHARGE_KEYS)
        sk, spin = _first(info, SPIN_KEYS)
        fixed = None
        for c in atoms.constraints:
            if type(c).__name__ == "FixAtoms":
                fixed = np.zeros(len(atoms), dtype=bool)
                fixed[c.get_indices()] = True
        if fixed is None and "move_mask" in arrays:
            fixed = ~np.asarray(arrays["move_mask"], dtype=bool).reshape(len(atoms), -1).all(axis=1)
        tags = atoms.get_tags() if "tags" in arrays else None
        magmom = None
        for key in ("magmom", "magmoms", "initial_magmoms"):
            if key in arrays:
                magmom = np.asarray(arrays[key], dtype=np.float64).reshape(len(atoms), -1)[:, 0]
                break
        if stress is not None:
            stress = stress_to_3x3(stress, source, frame)
        return cls.build(
            pos=atoms.get_positions(),
            atomic_numbers=atoms.get_atomic_numbers(),
            cell=np.asarray(atoms.get_cell()),
            pbc=atoms.get_pbc(),
            energy=energy,
            forces=forces,
            stress=stress,
            charge=0 if charge is None else _as_int(charge, ck, source, frame),
            spin=1 if spin is None else _as_int(spin, sk, source, frame),
            fixed=fixed,
            tags=tags,
            magmom=magmom,
            **extra,
        )

    def to_ase(self):
        """An ``ase.Atoms`` with the targets on a SinglePointCalculator and charge/spin in info."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.constraints import FixAtoms

        atoms = Atoms(
            numbers=self.atomic_numbers.cpu().numpy(),
            positions=self.pos.detach().cpu().numpy(),
            cell=self.cell.detach().cpu().numpy().reshape(3, 3),
            pbc=self.pbc.cpu().numpy().reshape(3),
        )
        atoms.info["charge"] = int(self.charge)
        atoms.info["spin"] = int(self.spin)
        if "tags" in self:
            atoms.set_tags(self.tags.cpu().numpy())
        if "fixed" in self and bool(self.fixed.any()):
            atoms.set_constraint(FixAtoms(mask=self.fixed.cpu().numpy()))
        results = {}
        if "energy" in self:
            results["energy"] = float(self.energy.reshape(-1)[0])
        if "forces" in self:
            results["forces"] = self.forces.detach().cpu().numpy()
        if "stress" in self:
            s = self.stress.detach().cpu().numpy().reshape(3, 3)
            results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

"""An ASE constraint that removes rigid-body motion from MD: the centre-of-mass translation always,
and for a molecule (no periodic direction) the rotation about the centre of mass.

Why: a thermostat drives the kinetic energy towards (degrees of freedom) x kT / 2, and ASE counts
3N of them (less what constraints declare removed). A molecule whose total momentum and angular
momentum stay zero (Nose-Hoover, Bussi and velocity Verlet conserve both) moves in 3N - 6 (a linear
one in 3N - 5); counted over 3N, the thermostat heats it (9-atom ethanol: 27 / 21 x 300 K = 386 K).
With this constraint the momenta and forces are projected onto the internal motions (the projection
in the mass-weighted sense, as ASE's FixCom does for the translation), ASE's own temperature and
Bussi's target count the remaining degrees of freedom, and Langevin's random kicks reach only them.
"""

from __future__ import annotations

import numpy as np
from ase.constraints import FixConstraint


class FixRigidMotion(FixConstraint):
    """No centre-of-mass motion; with ``rotation``, no rotation about the centre of mass either."""

    def __init__(self, rotation: bool = True):
        self.rotation = bool(rotation)

    # -- geometry -------------------------------------------------------------------------
    @staticmethod
    def _frame(atoms):
        masses = atoms.get_masses()
        centre = masses @ atoms.get_positions() / masses.sum()
        r = atoms.get_positions() - centre
        inertia = (masses * (r * r).sum(1)).sum() * np.eye(3) - np.einsum("i,ij,ik->jk", masses, r, r)
        return masses, r, inertia

    @staticmethod
    def _rank(inertia: np.ndarray) -> int:
        eig = np.linalg.eigvalsh(inertia)
        return int((eig > 1e-8 * max(eig.max(), 1e-30)).sum())

    def get_removed_dof(self, atoms) -> int:
        if len(atoms) == 1:
            return 3
        return 3 + (self._rank(self._frame(atoms)[2]) if self.rotation else 0)

    def _remove(self, atoms, vectors: np.ndarray) -> None:
        """vectors (N,3) momenta or forces: subtract m_i (A + W x r_i), the rigid-body part."""
        masses, r, inertia = self._frame(atoms)
        vectors -= masses[:, None] * (vectors.sum(0) / masses.sum())
        if self.rotation and len(atoms) > 1:
            w = np.linalg.pinv(inertia, hermitian=True) @ np.cross(r, vectors).sum(0)
            vectors -= masses[:, None] * np.cross(w, r)

    # -- the ASE constraint interface -----------------------------------------------------
    def adjust_positions(self, atoms, new) -> None:
        masses = atoms.get_masses()
        new += (masses @ atoms.get_positions() - masses @ new) / masses.sum()  # keep the centre of mass

    def adjust_momenta(self, atoms, momenta) -> None:
        self._remove(atoms, momenta)

    def adjust_forces(self, atoms, forces) -> None:
        self._remove(atoms, forces)

    def todict(self) -> dict:
        return {"name": "FixRigidMotion", "kwargs": {"rotation": self.rotation}}


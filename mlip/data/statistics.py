"""Dataset statistics: per-element reference energies by linear regression, average neighbour
count at a cutoff, the shortest distance of every element pair, force RMS, element set and sizes.
Streaming: memory does not grow with the data.

With a ``prior`` (a fixed physical term the model adds to what it learns, such as the ZBL
repulsion: ``Potential.prior``), the energies and forces are taken net of it, so the reference
energies and the force scale describe what is left to learn."""

from __future__ import annotations

import numpy as np

N_ELEMENTS = 119  # index = atomic number; 0 unused


class StatisticsAccumulator:
    """Feed AtomicData one at a time with :meth:`add`; :meth:`result` gives the summary dict.

    Neighbour counts use the record's ``edge_index`` if it has one (built at ``cutoff``, uncapped),
    else a neighbour list at ``cutoff``.

    Reference energies solve min ||E - X e|| (X: element counts per structure) through the
    accumulated normal equations; where compositions do not determine them (e.g. one molecule)
    the minimum-norm solution is taken.
    """

    def __init__(self, cutoff: float | None = 5.0, prior=None):
        self.cutoff = cutoff
        self.prior = prior  # AtomicData -> (energy eV, forces (N,3) eV/Å) or None
        self.xtx = np.zeros((N_ELEMENTS, N_ELEMENTS))
        self.xty = np.zeros(N_ELEMENTS)
        self.yty = 0.0
        self.element_counts = np.zeros(N_ELEMENTS, dtype=np.int64)
        self.n_structures = 0
        self.n_atoms = 0
        self.n_periodic = 0
        self.min_atoms = None
        self.max_atoms = 0
        self.n_with = {"energy": 0, "forces": 0, "stress": 0}
        self.force_sq = 0.0
        self.force_components = 0
        self.energy_per_atom_sum = 0.0
        self.n_edges = 0
        self.charges: set[int] = set()
        self.spins: set[int] = set()
        # shortest distance (Å, periodic images included) of each element pair within the cutoff
        self.pair_min = np.full((N_ELEMENTS, N_ELEMENTS), np.inf)

    def add(self, data) -> None:
        z = data.atomic_numbers.cpu().numpy()
        n = len(z)
        counts = np.bincount(z, minlength=N_ELEMENTS).astype(np.float64)
        self.element_counts += counts.astype(np.int64)
        self.n_structures += 1
        self.n_atoms += n
        self.min_atoms = n if self.min_atoms is None else min(self.min_atoms, n)
        self.max_atoms = max(self.max_atoms, n)
        pbc = data.pbc.reshape(3).cpu().numpy()
        self.n_periodic += int(pbc.any())
        self.charges.add(int(data.charge))
        self.spins.add(int(data.spin))
        prior_energy, prior_forces = 0.0, 0.0
        if self.prior is not None and ("energy" in data or "forces" in data):
            prior_energy, prior_forces = self.prior(data)
        if "energy" in data:
            e = float(data.energy.reshape(-1)[0]) - prior_energy
            self.n_with["energy"] += 1
            self.xtx += np.outer(counts, counts)
            self.xty += counts * e
            self.yty += e * e
            self.energy_per_atom_sum += e / n
        if "forces" in data:
            f = data.forces.double().cpu().numpy() - prior_forces
            self.n_with["forces"] += 1
            self.force_sq += float((f * f).sum())
            self.force_components += f.size
        if "stress" in data:
            self.n_with["stress"] += 1
        if not self.cutoff:
            return
        pos = data.pos.double().cpu().numpy()
        cell = data.cell.reshape(3, 3).double().cpu().numpy()
        if "edge_index" in data and "cell_shifts" in data:  # a graph built at this cutoff
            i, j = data.edge_index.cpu().numpy()
            shifts = data.cell_shifts.double().cpu().numpy()
        else:
            from mlip.graph.neighbors import neighbor_list_numpy

            i, j, shifts = neighbor_list_numpy(pos, cell, pbc, self.cutoff)
        self.n_edges += len(i)
        if len(i):
            distance = np.linalg.norm(pos[j] - pos[i] + shifts @ cell, axis=1)
            np.minimum.at(self.pair_min, (np.minimum(z[i], z[j]), np.maximum(z[i], z[j])), distance)

    def pair_min_distances(self) -> list[list]:
        """[[Z1, Z2, r_min Å], ...] (Z1 <= Z2): the shortest distance each element pair has in the data
        (within the cutoff), for every pair that occurs."""
        z1, z2 = np.nonzero(np.isfinite(self.pair_min))
        return [[int(a), int(b), float(self.pair_min[a, b])] for a, b in zip(z1, z2)]

    def reference_energies(self) -> dict[int, float]:
        present = np.flatnonzero(np.diag(self.xtx) > 0)
        if len(present) == 0:
            return {}
        a = self.xtx[np.ix_(present, present)]
        solution = np.linalg.lstsq(a, self.xty[present], rcond=None)[0]
        return {int(z): float(e) for z, e in zip(present, solution)}

    def result(self) -> dict:
        refs = self.reference_energies()
        out = {
            "n_structures": self.n_structures,
            "n_atoms": self.n_atoms,
            "n_periodic": self.n_periodic,
            "atoms_per_structure": {"min": self.min_atoms, "mean": self.n_atoms / max(1, self.n_structures),
                                    "max": self.max_atoms},
            "elements": [int(z) for z in np.flatnonzero(self.element_counts)],
            "element_counts": {int(z): int(c) for z, c in enumerate(self.element_counts) if c},
            "n_with": dict(self.n_with),
            "charges": sorted(self.charges),
            "spins": sorted(self.spins),
            "reference_energies": refs,
            "cutoff": self.cutoff,
            "avg_num_neighbors": self.n_edges / max(1, self.n_atoms) if self.cutoff else None,
            "pair_min_distance": self.pair_min_distances() if self.cutoff else [],
            "force_rms": float(np.sqrt(self.force_sq / self.force_components)) if self.force_components else None,
            "energy_per_atom_mean": self.energy_per_atom_sum / self.n_with["energy"] if self.n_with["energy"] else None,
        }
        if refs and self.n_with["energy"]:
            z = np.array(list(refs)), np.array(list(refs.values()))
            e = np.zeros(N_ELEMENTS)
            e[z[0]] = z[1]
            # residual sum of squares from the normal equations: y'y - 2 e'X'y + e'X'X e
            rss = self.yty - 2 * e @ self.xty + e @ self.xtx @ e
            out["energy_residual_rms"] = float(np.sqrt(max(rss, 0.0) / self.n_with["energy"]))
        return out


def format_pair_distances(pairs) -> str:
    """"H-H 1.452, C-H 0.971, ..." from [(Z1, Z2, Å), ...] (``pair_min_distance``)."""
    from ase.data import chemical_symbols

    return ", ".join(f"{chemical_symbols[int(a)]}-{chemical_symbols[int(b)]} {d:.3f}" for a, b, d in pairs)


def compute_statistics(dataset, cutoff: float | None = 5.0, indices=None, progress: bool = False,
                       prior=None) -> dict:
    """Statistics of ``dataset`` (or of the frames ``indices`` of it, e.g. the training split), net
    of ``prior`` (see the module docstring) when one is given."""
    from mlip.progress import progress as tqdm

    acc = StatisticsAccumulator(cutoff, prior)
    order = range(len(dataset)) if indices is None else indices
    for i in tqdm(order, disable=not progress, desc="statistics", unit="frame"):
        acc.add(dataset[int(i)])
    return acc.result()

"""The module an exported potential runs: graph search, energy, forces and stress in TorchScript.

:class:`ScriptablePotential` wraps any mlip Potential. Its methods take plain tensors, so the
scripted file needs torch and mlip's two operators (mlip.kernels.operators) and works from C++
(libtorch, the operators compiled in) and MD engines. Units as everywhere in mlip: Å, eV, eV/Å, stress eV/Å^3 with ASE's sign.
"""

from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import torch
from torch import nn

from mlip.graph.neighbors import cap_neighbors, neighbor_list_torch


def frozen(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode whose weights want no gradient: the scripted backward then
    computes the gradients that forces and stress need, not the weights' as well (TorchScript's
    differentiable graphs compute every gradient their inputs ask for: 13% of a step of Facet "mp" on
    512 Si atoms)."""
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class ScriptablePotential(nn.Module):
    """``forward(pos (N,3), atomic_numbers (N,), cell (3,3), pbc (3,) bool, charge (), spin ())``
    -> {"energy" (1,), "forces" (N,3), "stress" (1,3,3)} for one structure, neighbour list included
    (all pairs over periodic images; fine up to a few thousand atoms).

    ``compute(pos, atomic_numbers, cell (B,3,3), pbc (B,3) bool, edge_index (2,E), cell_shifts (E,3),
    batch (N,), num_graphs, charge (B,), spin (B,), compute_forces, compute_stress)``: the same for a batch
    with a neighbour list supplied by the caller (an MD engine), edge vector
    ``pos[target] - pos[source] + cell_shifts @ cell``.

    ``lammps(pos, atomic_numbers, edge_index, nlocal, atom_virials)``: one MPI rank's share in an MD
    engine's domain decomposition (the LAMMPS pair style ``mlip``, integrations/lammps): owned
    atoms first, then ghost atoms (periodic images and other ranks' atoms, positions already
    shifted) out to ``interaction_hops * cutoff``, and the engine's full neighbour list over all of
    them. Only the owned atoms' energies are summed, so each atom's energy is counted once over
    all ranks; forces land on owned and ghost atoms (the engine adds ghost forces to their owners).
    """

    def __init__(self, model):
        super().__init__()
        self.model = frozen(model)
        self.cutoff = float(model.cutoff)
        self.max_neighbors = int(model.max_neighbors or 0)
        self.known_species = model.known_species.clone()
        self.interaction_hops = int(model.interaction_hops)
        self.direct_forces = bool(model.direct_forces)
        self.frame_averaged = int(model.num_frames) > 0

    @torch.jit.export
    def check_species(self, atomic_numbers: torch.Tensor) -> None:
        unknown = ~self.known_species[atomic_numbers]
        if bool(unknown.any()):
            bad: List[int] = torch.unique(atomic_numbers[unknown]).tolist()
            raise ValueError("this model was not trained on the elements with atomic numbers " + str(bad))

    @torch.jit.export
    def neighbor_list(self, pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor):
        """(edge_index (2,E), cell_shifts (E,3)) within the model's cutoff, nearest max_neighbors kept."""
        source, target, shifts = neighbor_list_torch(pos, cell, pbc, self.cutoff)
        if self.max_neighbors > 0:
            from_cell = shifts.to(pos.dtype) @ cell.reshape(3, 3).to(pos.dtype)
            distance = (pos[target] - pos[source] + from_cell).norm(p=2, dim=-1)
            keep = cap_neighbors(source, target, distance, shifts, self.max_neighbors)
            source, target, shifts = source[keep], target[keep], shifts[keep]
        return torch.stack([source, target]), shifts

    @torch.jit.export
    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                edge_index: torch.Tensor, cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                charge: torch.Tensor, spin: torch.Tensor, compute_forces: bool = True,
                compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        self.check_species(atomic_numbers)
        return self.model.compute(pos, atomic_numbers, cell, pbc, edge_index, cell_shifts, batch, num_graphs,
                                  charge, spin, compute_forces, compute_stress)

    def forward(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                charge: int = 0, spin: int = 1) -> Dict[str, torch.Tensor]:
        edge_index, shifts = self.neighbor_list(pos, cell, pbc)
        n = atomic_numbers.shape[0]
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
        charges = torch.full([1], charge, dtype=torch.long, device=pos.device)
        spins = torch.full([1], spin, dtype=torch.long, device=pos.device)
        return self.compute(pos, atomic_numbers, cell.reshape(1, 3, 3), pbc.reshape(1, 3), edge_index, shifts, batch,
                            1, charges, spins, True, True)


    @torch.jit.export
    def owned_reach(self, edge_index: torch.Tensor, num_atoms: int, nlocal: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """What the owned atoms' energies depend on: the atoms within interaction_hops hops of an
        owned atom (atoms (M,), owned first, in order) and the edges into atoms within
        interaction_hops - 1 hops, numbered over those M atoms ((2, E')). An atom's features after
        block k come from its incoming edges, and only atoms within interaction_hops - k hops of
        an owned atom matter after block k; so the edges into the outermost shell carry nothing to
        an owned atom (their gradient is zero), and atoms beyond it (the neighbour list's skin,
        atoms the graph does not reach in time) are left out."""
        source, target = edge_index[0], edge_index[1]
        within = torch.zeros(num_atoms, dtype=torch.bool, device=edge_index.device)
        within[:nlocal] = True
        inner = within
        for hop in range(self.interaction_hops):
            if hop == self.interaction_hops - 1:
                inner = within
            grown = within.clone()
            grown[source[within[target]]] = True
            within = grown
        atoms = within.nonzero().flatten()
        numbering = torch.full([num_atoms], -1, dtype=torch.long, device=edge_index.device)
        numbering[atoms] = torch.arange(atoms.shape[0], device=edge_index.device)
        return atoms, numbering[edge_index[:, inner[target]]]

    @torch.jit.export
    def lammps(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, nlocal: int,
               atom_virials: bool = False) -> Dict[str, torch.Tensor]:
        """One rank's energies, forces and virials.

        Args:
            pos: (N,3) Å, the ``nlocal`` owned atoms first, then ghosts.
            atomic_numbers: (N,).
            edge_index: (2,E) [source, target] pairs within the cutoff over all N atoms (both
                directions), edge vector ``pos[target] - pos[source]``.
            nlocal: the number of owned atoms.
            atom_virials: also return per-atom virials.

        Returns:
            "energy" () eV, the sum of the owned atoms' energies; "atom_energies" (nlocal,) eV;
            "forces" (N,3) eV/Å on owned and ghost atoms; "virial" (6,) eV in LAMMPS's order
            xx, yy, zz, xy, xz, yz and sign (sum of r ⊗ f, positive when pushing outwards);
            "atom_virials" (N,6) eV (each edge's share split evenly between its two atoms), or (0,6).
        """
        if self.direct_forces:
            raise ValueError("this model predicts forces directly (not as the gradient of its energy); an MD "
                             "engine's domain decomposition needs conservative forces")
        if self.frame_averaged:
            raise ValueError("this model averages over frames of whole structures (frame_averaging), so an atom's "
                             "energy depends on atoms beyond any cutoff: an MD engine's domain decomposition cannot "
                             "split it; run it through forward or compute with whole structures")
        self.check_species(atomic_numbers)
        dtype = self.model.reference_energies.dtype
        pos = pos.to(dtype)
        source, target = edge_index[0], edge_index[1]
        if self.max_neighbors > 0:
            distance = (pos[target] - pos[source]).norm(p=2, dim=-1)
            keep = cap_neighbors(source, target, distance, torch.zeros_like(pos[source], dtype=torch.long),
                                 self.max_neighbors)
            edge_index = edge_index[:, keep]
            source, target = edge_index[0], edge_index[1]
        n = atomic_numbers.shape[0]
        atoms, local_edges = self.owned_reach(edge_index, n, nlocal)
        source, target = atoms[local_edges[0]], atoms[local_edges[1]]
        vec = (pos[target] - pos[source]).detach().requires_grad_(True)
        m = atoms.shape[0]
        batch = torch.zeros(m, dtype=torch.long, device=pos.device)
        charge = torch.zeros(1, dtype=torch.long, device=pos.device)
        spin = torch.ones(1, dtype=torch.long, device=pos.device)
        e_atom, _ = self.model.total_atom_energies(atomic_numbers[atoms], local_edges, vec, batch, 1, charge, spin)
        e_local = e_atom[:nlocal]
        energy = e_local.sum()
        grad = torch.autograd.grad([energy], [vec], allow_unused=True)[0]
        if grad is None:
            grad = torch.zeros_like(vec)
        forces = torch.zeros_like(pos)
        forces.index_add_(0, target, -grad)
        forces.index_add_(0, source, grad)
        # W = sum over atoms of x ⊗ f = -sum over edges of vec ⊗ dE/dvec
        w = -(vec.detach().unsqueeze(-1) * grad.unsqueeze(-2))
        w = 0.5 * (w + w.transpose(1, 2))
        six = torch.stack([w[:, 0, 0], w[:, 1, 1], w[:, 2, 2], w[:, 0, 1], w[:, 0, 2], w[:, 1, 2]], dim=-1)
        out: Dict[str, torch.Tensor] = {"energy": energy.detach(), "atom_energies": e_local.detach(),
                                        "forces": forces, "virial": six.sum(0)}
        if atom_virials:
            per_atom = torch.zeros(n, 6, dtype=dtype, device=pos.device)
            per_atom.index_add_(0, source, 0.5 * six)
            per_atom.index_add_(0, target, 0.5 * six)
            out["atom_virials"] = per_atom
        else:
            out["atom_virials"] = torch.zeros(0, 6, dtype=dtype, device=pos.device)
        return out


class ScriptableForecaster(nn.Module):
    """A forecaster (mlip.models.forecaster) for TorchScript: ``compute(pos, atomic_numbers, masses,
    velocities, cell, pbc, edge_index, cell_shifts, batch, num_graphs)`` -> {"displacement",
    "velocities"} with the caller's graph, and the attributes a rollout reads (cutoff, max_neighbors,
    interval, displacement_scale, conserve_angular_momentum)."""

    def __init__(self, model):
        super().__init__()
        self.model = frozen(model)
        self.cutoff = float(model.cutoff)
        self.max_neighbors = model.max_neighbors
        self.conserve_angular_momentum = bool(model.conserve_angular_momentum)
        self.register_buffer("interval", model.interval.detach().clone())
        self.register_buffer("displacement_scale", model.displacement_scale.detach().clone())

    @torch.jit.export
    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, masses: torch.Tensor,
                velocities: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, edge_index: torch.Tensor,
                cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> Dict[str, torch.Tensor]:
        return self.model.compute(pos, atomic_numbers, masses, velocities, cell, pbc, edge_index, cell_shifts, batch,
                                  num_graphs)

    def forward(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, masses: torch.Tensor,
                velocities: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, edge_index: torch.Tensor,
                cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> Dict[str, torch.Tensor]:
        return self.compute(pos, atomic_numbers, masses, velocities, cell, pbc, edge_index, cell_shifts, batch,
                            num_graphs)

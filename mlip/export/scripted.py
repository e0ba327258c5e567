"""The module an exported potential runs: graph search, energy, forces and stress in TorchScript.

:class:`ScriptablePotential` wraps any mlip Potential. Its methods take plain tensors, so the
scripted file needs nothing but torch (``torch.jit.load``) and works from C++ (libtorch) and MD
engines. Units as everywhere in mlip: Å, eV, eV/Å, stress eV/Å^3 with ASE's sign.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from mlip.graph.neighbors import cap_neighbors, neighbor_list_torch


class ScriptablePotential(nn.Module):
    """``forward(pos (N,3), atomic_numbers (N,), cell (3,3), pbc (3,) bool, charge (), spin ())``
    -> {"energy" (1,), "forces" (N,3), "stress" (1,3,3)} for one structure, neighbour list included
    (all pairs over periodic images; fine up to a few thousand atoms).

    ``compute(pos, atomic_numbers, cell (B,3,3), edge_index (2,E), cell_shifts (E,3), batch (N,),
    num_graphs, charge (B,), spin (B,), compute_forces, compute_stress)``: the same for a batch
    with a neighbour list supplied by the caller (an MD engine), edge vector
    ``pos[target] - pos[source] + cell_shifts @ cell``.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        self.cutoff = float(model.cutoff)
        self.max_neighbors = int(model.max_neighbors or 0)
        self.known_species = model.known_species.clone()

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
    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, edge_index: torch.Tensor,
                cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                spin: torch.Tensor, compute_forces: bool = True,
                compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        self.check_species(atomic_numbers)
        return self.model.compute(pos, atomic_numbers, cell, edge_index, cell_shifts, batch, num_graphs, charge,
                                  spin, compute_forces, compute_stress)

    def forward(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                charge: int = 0, spin: int = 1) -> Dict[str, torch.Tensor]:
        edge_index, shifts = self.neighbor_list(pos, cell, pbc)
        n = atomic_numbers.shape[0]
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
        charges = torch.full([1], charge, dtype=torch.long, device=pos.device)
        spins = torch.full([1], spin, dtype=torch.long, device=pos.device)
        return self.compute(pos, atomic_numbers, cell.reshape(1, 3, 3), edge_index, shifts, batch, 1, charges, spins,
                            True, True)


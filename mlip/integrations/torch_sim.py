"""torch-sim (``pip install torch-sim-atomistic``) runs any mlip potential: :class:`MLIPModel` is a
``torch_sim.models.interface.ModelInterface``, so torch-sim's batched integrators (NVE, NVT, NPT),
optimizers (FIRE, unit-cell FIRE) and its autobatching drive an mlip model, a committee or an
exported file, many systems in one call.

    import torch_sim as ts
    from mlip.integrations.torch_sim import MLIPModel

    model = MLIPModel("runs/quickstart/<t>/checkpoints/best.ckpt", device="cuda")
    final = ts.optimize(system=[atoms_a, atoms_b], model=model, optimizer=ts.frechet_cell_fire)

Units are torch-sim's and mlip's alike: Å, eV, eV/Å, stress eV/Å^3 with ASE's sign.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch_sim.models.interface import ModelInterface

from mlip.data import AtomicData
from mlip.graph import collate


class MLIPModel(ModelInterface):
    """An mlip potential behind torch-sim's model interface.

    Args:
        model: a Potential, Committee or ExportedPotential, or a path ``mlip.load`` reads.
        device: where the model runs (default: CUDA when available, else CPU).
        dtype: the dtype of positions and outputs (eager models are cast to it; exported files keep
            the dtype they were exported in and their outputs are cast).
        compute_forces, compute_stress: what ``forward`` returns besides the energy.
    """

    def __init__(self, model, device: Optional[torch.device | str] = None, dtype: torch.dtype = torch.float64,
                 compute_forces: bool = True, compute_stress: bool = True):
        super().__init__()
        from mlip.allocator import keep_freed_memory
        from mlip.export import ExportedPotential
        from mlip.loading import load

        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._dtype = dtype
        self._compute_forces = bool(compute_forces)
        self._compute_stress = bool(compute_stress)
        self._memory_scales_with = "n_atoms_x_density"  # a radial cutoff
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model = load(model, device=str(self._device))
        if not isinstance(model, ExportedPotential):
            model = model.to(device=self._device, dtype=dtype)
        self.model = model.eval()
        if self._device.type == "cpu":
            keep_freed_memory()  # each step's large tensors reuse the last step's pages (mlip.allocator)
        self.cutoff = float(model.cutoff)
        self.max_neighbors = model.max_neighbors

    @ModelInterface.compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    @ModelInterface.compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    def forward(self, state, **kwargs) -> Dict[str, torch.Tensor]:
        """energy (n_systems,) eV, forces (n_atoms, 3) eV/Å, stress (n_systems, 3, 3) eV/Å^3 of a
        ``torch_sim.SimState`` (or its dict), all systems in one model call; detached."""
        import torch_sim as ts

        if isinstance(state, dict):
            state = ts.SimState(**state, masses=torch.ones_like(state["positions"]))
        if state.device != self._device:
            state = state.to(self._device)
        positions = state.positions.to(self._dtype)
        cells = state.row_vector_cell.to(self._dtype)  # rows are the cell vectors, as in mlip and ASE
        system_idx = state.system_idx
        pbc = torch.tensor([bool(state.pbc)] * 3, device=self._device)
        order = torch.argsort(system_idx, stable=True)  # mlip's batches hold each system's atoms together
        counts = torch.bincount(system_idx, minlength=state.n_systems).tolist()
        starts = [0]
        for c in counts[:-1]:
            starts.append(starts[-1] + c)
        structures = []
        for b, (start, count) in enumerate(zip(starts, counts)):
            atoms = order[start:start + count]
            structures.append(AtomicData(pos=positions[atoms], atomic_numbers=state.atomic_numbers[atoms].long(),
                                         cell=cells[b:b + 1], pbc=pbc.reshape(1, 3),
                                         natoms=torch.tensor([count], device=self._device),
                                         charge=torch.zeros(1, dtype=torch.long, device=self._device),
                                         spin=torch.ones(1, dtype=torch.long, device=self._device)))
        batch = collate(structures, cutoff=self.cutoff, max_neighbors=self.max_neighbors)
        out = self.model(batch, compute_forces=self._compute_forces, compute_stress=self._compute_stress)
        results = {"energy": out["energy"].detach().to(self._dtype)}
        if self._compute_forces:
            forces = torch.empty_like(positions)
            forces[order] = out["forces"].detach().to(self._dtype)
            results["forces"] = forces
        if self._compute_stress:
            results["stress"] = out["stress"].detach().to(self._dtype).reshape(-1, 3, 3)
        for key in ("energy_std", "forces_std", "stress_std"):  # committees and last-layer estimates
            if key in out:
                value = out[key].detach().to(self._dtype)
                if key == "forces_std":
                    unordered = torch.empty_like(value)
                    unordered[order] = value
                    value = unordered
                results[key] = value
        return results


__all__ = ["MLIPModel"]

"""The Forecaster base class: force-free MD models that step a state forward by a fixed interval.

A forecaster reads each atom's species, its neighbours' relative positions and its velocity, and
predicts its displacement over the forecast interval Δt (``interval``, fs) and its velocity at
t + Δt, without forces or an integrator (TrajCast; Thiemann et al. 2025, arXiv 2503.23794). An
architecture implements only ``node_outputs``: the graph and the velocities (in units of their
training RMS) to two vectors per atom, in units of the targets' training RMS. The base scales
them back (``displacement_scale`` Å, ``velocity_scale`` Å/fs: statistics of the training split,
stored in the model file) and applies the conservation step:

    v'_i = v_i - (Σ m_j v_j - P) / M        total momentum P = Σ m v of the input, exactly
    d'_i = d_i - (Σ m_j d_j) / M + P Δt / M  the centre of mass moves with P (fixed when P = 0)
    optionally, for structures periodic along no axis, the angular momentum about the centre of
    mass kept too, by a rigid rotation added to v' (``conserve_angular_momentum``).

Units: Å, fs, Å/fs, masses amu. ``forward(batch) -> {"displacement" (N,3), "velocities" (N,3)}``;
``compute(...)``, with the graph given, is what TorchScript runs (``torch.jit.script(model)``).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from mlip.graph.edges import edge_vectors
from mlip.models.base import check_species, set_avg_num_neighbors
from mlip.nn.embedding import NUM_ELEMENTS
from mlip.nn.momentum import (angular_momentum, linear_momentum, set_angular_momentum, set_centre_of_mass_shift,
                              set_linear_momentum)
from mlip.nn.scatter import scatter_sum

FORMAT = "mlip-forecaster"


class Forecaster(nn.Module):
    """Base of every forecaster.

    Args:
        cutoff: graph cutoff, Å.
        max_neighbors: keep at most this many nearest neighbours per atom (None: all in the cutoff).
        species: atomic numbers the model is meant for; others raise a clear error (None: any).
        conserve_angular_momentum: also keep the angular momentum of structures without periodic
            directions (isolated molecules).
    """

    name = "forecaster"
    file_format = FORMAT
    __jit_unused_properties__ = ["exactly_equivariant", "dtype"]

    def __init__(self, cutoff: float, max_neighbors: Optional[int] = None, species=None,
                 conserve_angular_momentum: bool = False):
        super().__init__()
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors
        self.conserve_angular_momentum = bool(conserve_angular_momentum)
        known = torch.zeros(NUM_ELEMENTS, dtype=torch.bool)
        if species is None:
            known[1:] = True
        else:
            known[torch.as_tensor(list(species), dtype=torch.long)] = True
        self.register_buffer("known_species", known)
        self.register_buffer("displacement_scale", torch.tensor(1.0))  # Å: RMS of the training displacements
        self.register_buffer("velocity_scale", torch.tensor(1.0))      # Å/fs: RMS of the training velocities
        self.register_buffer("interval", torch.tensor(0.0))            # fs: the forecast interval Δt
        self.hyperparameters: dict = {}

    # -- to implement ---------------------------------------------------------------------
    def node_outputs(self, atomic_numbers: torch.Tensor, velocities: torch.Tensor, edge_index: torch.Tensor,
                     edge_vec: torch.Tensor) -> torch.Tensor:
        """(N,2,3): displacement and new velocity of each atom in units of their training RMS, from the
        velocities (N,3) in units of theirs and the edge vectors (E,3) Å."""
        raise NotImplementedError

    @torch.jit.unused
    def auxiliary_loss(self, batch, progress: Optional[float] = None) -> Optional[torch.Tensor]:
        """A training-only loss term of the architecture's own (None: none), as Potential's."""
        return None

    # -- shared ---------------------------------------------------------------------------
    @property
    def exactly_equivariant(self) -> bool:
        return True

    @property
    def dtype(self) -> torch.dtype:
        return self.displacement_scale.dtype

    @torch.jit.unused
    def set_statistics(self, displacement_rms: float, velocity_rms: float, interval: float,
                       avg_num_neighbors: Optional[float] = None) -> None:
        """The training split's RMS displacement component (Å) and velocity component (Å/fs), the
        forecast interval (fs) and the average neighbour count that normalises messages."""
        self.displacement_scale.fill_(float(displacement_rms))
        self.velocity_scale.fill_(float(velocity_rms))
        self.interval.fill_(float(interval))
        if avg_num_neighbors is not None:
            set_avg_num_neighbors(self, avg_num_neighbors)

    @torch.jit.unused
    def check_species(self, atomic_numbers: torch.Tensor) -> None:
        check_species(self.known_species, atomic_numbers)

    @torch.jit.unused
    def forward(self, data) -> Dict[str, torch.Tensor]:
        """Displacement (N,3) Å and velocities (N,3) Å/fs one interval later, for a structure or batch
        with ``velocities`` (N,3) Å/fs and ``masses`` (N,) amu."""
        if "edge_index" not in data or "cell_shifts" not in data:
            from mlip.graph.build import build_graph

            data = build_graph(data.clone(), self.cutoff, self.max_neighbors)
        z = data.atomic_numbers
        self.check_species(z)
        batch = data.batch if getattr(data, "batch", None) is not None else z.new_zeros(z.shape[0])
        num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        return self.compute(data.pos, z, data.masses, data.velocities, data.cell.reshape(-1, 3, 3),
                            data.pbc.reshape(-1, 3), data.edge_index, data.cell_shifts, batch, num_graphs)

    @torch.jit.export
    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, masses: torch.Tensor,
                velocities: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, edge_index: torch.Tensor,
                cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> Dict[str, torch.Tensor]:
        """One forecast with the graph given (TorchScript-compatible).

        Args:
            pos: (N,3) Å. atomic_numbers: (N,). masses: (N,) amu. velocities: (N,3) Å/fs.
            cell: (B,3,3) Å. pbc: (B,3) bool. edge_index: (2,E) [source, target].
            cell_shifts: (E,3), edge vector ``pos[target] - pos[source] + cell_shifts @ cell``.
            batch: (N,) structure of each atom. num_graphs: B.
        Returns:
            {"displacement": (N,3) Å, "velocities": (N,3) Å/fs}, momentum conserved.
        """
        dtype = self.displacement_scale.dtype
        pos, velocities, masses = pos.to(dtype), velocities.to(dtype), masses.to(dtype)
        vec = edge_vectors(pos, cell.reshape(-1, 3, 3).to(dtype), edge_index, cell_shifts, batch)
        out = self.node_outputs(atomic_numbers, velocities / self.velocity_scale, edge_index, vec)
        displacement = out[:, 0] * self.displacement_scale
        new_velocities = out[:, 1] * self.velocity_scale
        momentum = linear_momentum(masses, velocities, batch, num_graphs)
        new_velocities = set_linear_momentum(masses, new_velocities, momentum, batch, num_graphs)
        total = scatter_sum(masses, batch, num_graphs).unsqueeze(-1)
        displacement = set_centre_of_mass_shift(masses, displacement, momentum * self.interval / total, batch,
                                                num_graphs)
        if self.conserve_angular_momentum:
            isolated = ~pbc.reshape(-1, 3).to(torch.bool).any(dim=1)  # (B,)
            spin = angular_momentum(masses, pos, velocities, batch, num_graphs)
            turned = set_angular_momentum(masses, pos + displacement, new_velocities, spin, batch, num_graphs)
            new_velocities = torch.where(isolated[batch].unsqueeze(-1), turned, new_velocities)
        return {"displacement": displacement, "velocities": new_velocities}

    # -- files ----------------------------------------------------------------------------
    @torch.jit.unused
    def save(self, path) -> None:
        """Write the model file (mlip.models.file) atomically; ``mlip.load`` reads it back."""
        from mlip.models.file import save

        save(self, path)

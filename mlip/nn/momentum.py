"""Total linear and angular momentum of structures in a batch, and the least change of velocities
(and displacements) that gives them prescribed values: the conservation step of a forecaster and
the momentum removal of its rollout. Masses amu, positions Å, velocities Å/fs, per structure of
``batch`` (N,); TorchScript-compatible."""

from __future__ import annotations

import torch

from mlip.nn.scatter import scatter_sum


def linear_momentum(masses: torch.Tensor, velocities: torch.Tensor, batch: torch.Tensor,
                    num_graphs: int) -> torch.Tensor:
    """(B,3) Σ_i m_i v_i per structure, amu Å/fs."""
    return scatter_sum(masses.unsqueeze(-1) * velocities, batch, num_graphs)


def centre_of_mass(masses: torch.Tensor, positions: torch.Tensor, batch: torch.Tensor,
                   num_graphs: int) -> torch.Tensor:
    """(B,3) Å."""
    total = scatter_sum(masses, batch, num_graphs)
    return scatter_sum(masses.unsqueeze(-1) * positions, batch, num_graphs) / total.unsqueeze(-1)


def angular_momentum(masses: torch.Tensor, positions: torch.Tensor, velocities: torch.Tensor,
                     batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """(B,3) Σ_i m_i (r_i - R) x v_i about each structure's centre of mass R, amu Å²/fs."""
    r = positions - centre_of_mass(masses, positions, batch, num_graphs)[batch]
    return scatter_sum(masses.unsqueeze(-1) * torch.linalg.cross(r, velocities), batch, num_graphs)


def set_linear_momentum(masses: torch.Tensor, velocities: torch.Tensor, momentum: torch.Tensor,
                        batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Velocities shifted by one vector per structure so that Σ m v = ``momentum`` (B,3): the
    smallest change in the mass-weighted norm."""
    total = scatter_sum(masses, batch, num_graphs).unsqueeze(-1)
    excess = linear_momentum(masses, velocities, batch, num_graphs) - momentum
    return velocities - (excess / total)[batch]


def set_centre_of_mass_shift(masses: torch.Tensor, displacement: torch.Tensor, shift: torch.Tensor,
                             batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Displacements shifted by one vector per structure so that the centre of mass moves by
    ``shift`` (B,3) Å."""
    total = scatter_sum(masses, batch, num_graphs).unsqueeze(-1)
    moved = scatter_sum(masses.unsqueeze(-1) * displacement, batch, num_graphs) / total
    return displacement - (moved - shift)[batch]


def set_angular_momentum(masses: torch.Tensor, positions: torch.Tensor, velocities: torch.Tensor,
                         momentum: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Velocities plus a rigid rotation ω_b x (r_i - R_b) per structure so that the angular momentum
    about the centre of mass is ``momentum`` (B,3); the linear momentum is unchanged. ω solves
    I ω = ΔL with the inertia tensor I (pseudo-inverse: a linear molecule's axis gets no spin)."""
    centre = centre_of_mass(masses, positions, batch, num_graphs)
    r = positions - centre[batch]
    m = masses.unsqueeze(-1).unsqueeze(-1)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    per_atom = m * ((r * r).sum(-1).unsqueeze(-1).unsqueeze(-1) * eye - r.unsqueeze(-1) * r.unsqueeze(-2))
    inertia = scatter_sum(per_atom.reshape(-1, 9), batch, num_graphs).reshape(-1, 3, 3)
    missing = momentum - angular_momentum(masses, positions, velocities, batch, num_graphs)
    omega = (torch.linalg.pinv(inertia, hermitian=True) @ missing.unsqueeze(-1)).squeeze(-1)
    return velocities + torch.linalg.cross(omega[batch], r)

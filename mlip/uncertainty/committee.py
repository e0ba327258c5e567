"""A committee of potentials: K members (same cutoff) evaluated on one graph in one call, their
mean as the prediction and their spread, times a calibration factor, as its uncertainty."""

from __future__ import annotations

import os
from typing import Dict, Sequence

import torch
from torch import nn

FORMAT = "mlip-committee"
VERSION = 1


class Committee(nn.Module):
    """``forward(batch) -> {"energy", "forces", "stress"}`` (the members' mean) plus ``energy_std`` (B,)
    eV, ``forces_std`` (N,) eV/Å (per atom: the RMS over members of |F_k - F_mean|, the norm of the
    per-component spread) and ``stress_std`` (B,3,3) eV/Å^3, all sample standard deviations (K - 1)
    times ``calibration``.

    Args:
        members: Potentials of the same cutoff and neighbour cap (they share the graph).
        calibration: factor on every spread (fitted on a validation split: mlip.uncertainty.calibration).
    """

    name = "committee"
    provides_uncertainty = True

    def __init__(self, members: Sequence[nn.Module], calibration: float = 1.0):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        cutoffs = {float(m.cutoff) for m in members}
        caps = {m.max_neighbors for m in members}
        if len(cutoffs) > 1 or len(caps) > 1:
            raise ValueError(f"committee members must share cutoff and max_neighbors (one graph for all); "
                             f"got cutoffs {sorted(cutoffs)}, max_neighbors {sorted(caps, key=str)}")
        self.members = nn.ModuleList(members)
        self.cutoff = cutoffs.pop()
        self.max_neighbors = caps.pop()
        self.register_buffer("calibration", torch.tensor(float(calibration), dtype=torch.float64))

    @property
    def dtype(self) -> torch.dtype:
        return self.members[0].dtype

    @property
    def exactly_equivariant(self) -> bool:
        return all(m.exactly_equivariant for m in self.members)

    def check_species(self, atomic_numbers: torch.Tensor) -> None:
        for member in self.members:
            member.check_species(atomic_numbers)

    def forward(self, data, compute_forces: bool = True, compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        if "edge_index" not in data or "cell_shifts" not in data:
            from mlip.graph.build import build_graph

            data = build_graph(data.clone(), self.cutoff, self.max_neighbors)
        outs = [member(data, compute_forces=compute_forces, compute_stress=compute_stress) for member in self.members]
        result: Dict[str, torch.Tensor] = {}
        factor = self.calibration
        for key in ("energy", "forces", "stress"):  # members' own uncertainties (if any) are not averaged
            if key not in outs[0]:
                continue
            stack = torch.stack([o[key] for o in outs])
            result[key] = stack.mean(0)
            spread = stack.std(0, correction=1) * factor.to(stack.dtype)
            if key == "forces":
                spread = spread.pow(2).sum(-1).sqrt()  # (N,): per atom
            result[f"{key}_std"] = spread
        return result

    def save(self, path) -> None:
        """Write the committee (every member's model-file payload and the calibration) atomically."""
        from mlip.models.file import payload

        tmp = f"{path}.tmp-{os.getpid()}"
        torch.save({"format": FORMAT, "version": VERSION, "members": [payload(m) for m in self.members],
                    "calibration": float(self.calibration)}, tmp)
        os.replace(tmp, path)

    @classmethod
    def from_content(cls, content: dict, device: str = "cpu") -> "Committee":
        from mlip.models.file import from_payload

        return cls([from_payload(p, device) for p in content["members"]], content.get("calibration", 1.0)).to(device)

"""Error metrics accumulated over an epoch: MAE and RMSE of energy (per atom and per structure),
forces (per component) and stress (per component); for a forecaster, of the displacement (Å) and
the new velocity (Å/fs) components. Targets that are NaN are skipped."""

from __future__ import annotations

import torch


class ErrorMetrics:
    """``update(pred, batch)`` per batch, ``compute()`` -> dict of floats (eV, eV/atom, eV/Å, eV/Å^3)."""

    QUANTITIES = ("energy", "energy_per_atom", "forces", "stress", "displacement", "velocities")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums = {q: [0.0, 0.0, 0] for q in self.QUANTITIES}  # abs sum, square sum, count

    def add(self, name: str, pred, target) -> None:
        """Accumulate one quantity's errors (tensors or arrays; NaN/inf targets are left out)."""
        self._add(name, torch.as_tensor(pred), torch.as_tensor(target))

    def _add(self, name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        mask = torch.isfinite(target)
        if not bool(mask.any()):
            return
        diff = (pred.detach().double() - target.double())[mask]
        s = self.sums[name]
        s[0] += float(diff.abs().sum())
        s[1] += float((diff * diff).sum())
        s[2] += int(diff.numel())

    def update(self, pred, batch) -> None:
        natoms = batch.natoms.double()
        if "energy" in batch and "energy" in pred:
            self._add("energy", pred["energy"], batch.energy)
            self._add("energy_per_atom", pred["energy"].detach().double() / natoms, batch.energy.double() / natoms)
        if "forces" in batch and "forces" in pred:
            self._add("forces", pred["forces"], batch.forces)
        if "stress" in batch and "stress" in pred:
            self._add("stress", pred["stress"], batch.stress)
        if "displacement" in batch and "displacement" in pred:  # a forecaster's
            self._add("displacement", pred["displacement"], batch.displacement)
            self._add("velocities", pred["velocities"], batch.next_velocities)

    def compute(self) -> dict:
        out = {}
        for name, (abs_sum, sq_sum, count) in self.sums.items():
            if count:
                out[f"{name}_mae"] = abs_sum / count
                out[f"{name}_rmse"] = (sq_sum / count) ** 0.5
        return out

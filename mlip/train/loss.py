"""Training losses: a potential's on energy per atom, forces and stress, with targets a structure lacks
(NaN) masked; a forecaster's on displacements and new velocities."""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn


def _elementwise(kind: str, delta: float):
    if kind in ("mse", "l2"):
        return lambda d: d * d
    if kind in ("mae", "l1"):
        return lambda d: d.abs()
    if kind == "huber":
        return lambda d: torch.where(d.abs() < delta, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))
    raise ValueError(f"loss kind must be mse, l1 or huber, got {kind!r}")


def masked_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred - target where the target is known, 0 where it is NaN (a non-finite prediction stays
    non-finite, so a diverging model is caught rather than hidden)."""
    return torch.where(torch.isfinite(target), pred - torch.nan_to_num(target), torch.zeros_like(pred))


def masked_mean(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the entries whose target is finite (0 if none)."""
    mask = torch.isfinite(target)
    count = mask.sum()
    return torch.where(count > 0, (values * mask).sum() / count.clamp(min=1), values.new_zeros(()))


class PotentialLoss(nn.Module):
    """weighted sum of loss(E/N), loss(F) per component and loss(σ) per component.

    Args:
        energy_weight, forces_weight, stress_weight: weights of the three terms.
        kind: "mse" (L2), "l1" or "huber" (``huber_delta`` in the targets' units).
    """

    def __init__(self, energy_weight: float = 1.0, forces_weight: float = 10.0, stress_weight: float = 0.0,
                 kind: str = "mse", huber_delta: float = 0.01):
        super().__init__()
        self.weights = {"energy": float(energy_weight), "forces": float(forces_weight), "stress": float(stress_weight)}
        self.kind = kind
        self.elementwise = _elementwise(kind, huber_delta)

    def required_targets(self) -> list[str]:
        return [k for k, w in self.weights.items() if w > 0]

    def forward(self, pred: Dict[str, torch.Tensor], batch) -> Dict[str, torch.Tensor]:
        natoms = batch.natoms.to(pred["energy"].dtype)
        terms = {}
        if self.weights["energy"] > 0:
            target = batch.energy.to(pred["energy"].dtype) / natoms
            diff = masked_difference(pred["energy"] / natoms, target)
            terms["energy"] = masked_mean(self.elementwise(diff), target)
        if self.weights["forces"] > 0:
            target = batch.forces.to(pred["forces"].dtype)
            terms["forces"] = masked_mean(self.elementwise(masked_difference(pred["forces"], target)), target)
        if self.weights["stress"] > 0:
            target = batch.stress.to(pred["stress"].dtype)
            terms["stress"] = masked_mean(self.elementwise(masked_difference(pred["stress"], target)), target)
        total = sum(self.weights[k] * v for k, v in terms.items())
        return {"loss": total, **{f"loss_{k}": v for k, v in terms.items()}}


class ForecastLoss(nn.Module):
    """A forecaster's loss: weighted mean squared (or l1, huber) error of the displacement and new
    velocity components, each in units of its training RMS (``set_scales``, from the training split;
    the model's own output scales), so that both terms are O(1) whatever the system and interval.

    Args:
        displacement_weight, velocity_weight: weights of the two terms.
        kind: "mse", "l1" or "huber" (``huber_delta`` in the normalised units).
    """

    def __init__(self, displacement_weight: float = 1.0, velocity_weight: float = 1.0, kind: str = "mse",
                 huber_delta: float = 0.1):
        super().__init__()
        self.weights = {"displacement": float(displacement_weight), "velocities": float(velocity_weight)}
        self.kind = kind
        self.elementwise = _elementwise(kind, huber_delta)
        self.scales = {"displacement": 1.0, "velocities": 1.0}

    def set_scales(self, displacement: float, velocities: float) -> None:
        """RMS displacement component (Å) and velocity component (Å/fs) of the training split."""
        self.scales = {"displacement": float(displacement), "velocities": float(velocities)}

    def required_targets(self) -> list[str]:
        return ["displacement", "next_velocities"]

    def forward(self, pred: Dict[str, torch.Tensor], batch) -> Dict[str, torch.Tensor]:
        targets = {"displacement": batch.displacement, "velocities": batch.next_velocities}
        terms = {}
        for key, target in targets.items():
            diff = (pred[key] - target.to(pred[key].dtype)) / self.scales[key]
            terms[key] = self.elementwise(diff).mean()
        total = sum(self.weights[k] * v for k, v in terms.items())
        return {"loss": total, **{f"loss_{k}": v for k, v in terms.items()}}

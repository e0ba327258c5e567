"""Fit, calibrate and attach a model's last-layer uncertainty (LLPR, mlip.nn.llpr)."""

from __future__ import annotations

import torch

from mlip.nn.llpr import fit_last_layer
from mlip.uncertainty.calibration import calibration_factor


def attach_last_layer(model, train_loader, val_loader, regulariser: float = 1e-6):
    """Fit the last layer's rigidities on ``train_loader``'s batches, attach them to ``model``
    (``model.uncertainty``) and calibrate the two factors on ``val_loader``'s: predicted and actual
    per-atom force errors agree in RMS, and so do structure energy errors. Returns ``model``."""
    state = fit_last_layer(model, train_loader, regulariser)
    model.uncertainty = state.to(model.reference_energies.device)
    model.eval()
    forces_std, force_error, energy_std, energy_error = [], [], [], []
    for batch in val_loader:
        out = model(batch, compute_stress=False)
        forces_std.append(out["forces_std"].detach().double())
        force_error.append((out["forces"].detach().double() - batch.forces.double()).norm(dim=-1))
        if "energy" in batch:
            energy_std.append(out["energy_std"].detach().double())
            energy_error.append((out["energy"].detach().double() - batch.energy.double()).abs())
    state.alpha_forces.fill_(calibration_factor(torch.cat(forces_std).numpy(), torch.cat(force_error).numpy()))
    if energy_std:
        state.alpha_energy.fill_(calibration_factor(torch.cat(energy_std).numpy(), torch.cat(energy_error).numpy()))
    return model


__all__ = ["attach_last_layer"]

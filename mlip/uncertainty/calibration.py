"""Calibration of predicted uncertainties against actual errors, and how well they rank them."""

from __future__ import annotations

import numpy as np


def calibration_factor(predicted_std: np.ndarray, actual_error: np.ndarray) -> float:
    """The factor s that makes s^2 mean(std^2) = mean(error^2): predicted and actual RMS errors agree."""
    std, err = np.asarray(predicted_std, dtype=float).ravel(), np.asarray(actual_error, dtype=float).ravel()
    mean_sq = float(np.mean(std ** 2))
    if not np.isfinite(mean_sq) or mean_sq <= 0:
        raise ValueError("predicted uncertainties are all zero: nothing to calibrate")
    return float(np.sqrt(np.mean(err ** 2) / mean_sq))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a).ravel(), np.asarray(b).ravel()).statistic)


def uncertainty_report(forces_std: np.ndarray, force_error: np.ndarray, structure_index: np.ndarray,
                       energy_std=None, energy_error=None, bins: int = 10) -> dict:
    """How predicted force uncertainties relate to actual force errors.

    Args:
        forces_std: (N,) predicted per-atom force uncertainty, eV/Å.
        force_error: (N,) actual per-atom force error |F_pred - F_ref|, eV/Å.
        structure_index: (N,) which structure each atom belongs to.
        energy_std, energy_error: (B,) optional, per structure, eV.
    Returns: Spearman correlations per atom and per structure (structure: RMS of its atoms' predicted
    std against the RMS of its atoms' errors), the RMS of both, and a calibration curve (atoms in
    ``bins`` quantile bins of predicted std: RMS predicted against RMS actual in each bin).
    """
    std, err = np.asarray(forces_std, float), np.asarray(force_error, float)
    idx = np.asarray(structure_index)
    count = np.bincount(idx)
    per_std = np.sqrt(np.bincount(idx, std ** 2) / count)
    per_err = np.sqrt(np.bincount(idx, err ** 2) / count)
    edges = np.quantile(std, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, std, side="right") - 1, 0, bins - 1)
    curve = [(float(np.sqrt(np.mean(std[which == k] ** 2))), float(np.sqrt(np.mean(err[which == k] ** 2))))
             for k in range(bins) if np.any(which == k)]
    out = {"spearman_atoms": spearman(std, err), "spearman_structures": spearman(per_std, per_err),
           "forces_std_rms": float(np.sqrt(np.mean(std ** 2))), "force_error_rms": float(np.sqrt(np.mean(err ** 2))),
           "calibration_curve": curve}
    if energy_std is not None and energy_error is not None:
        out["spearman_energy"] = spearman(energy_std, np.abs(energy_error))
    return out

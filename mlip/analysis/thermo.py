"""Temperatures of trajectories and how they compare with the canonical ensemble."""

from __future__ import annotations

from typing import Optional

import numpy as np

KINETIC = 103.642696  # eV per amu (Å/fs)^2
BOLTZMANN = 8.617333262e-5  # eV/K


def temperatures(traj, dof: Optional[int] = None) -> np.ndarray:
    """(T,) K of each frame: 2 K / (N_f k_B), N_f = ``dof`` (default 3N - 3: no total momentum)."""
    n = len(traj.masses)
    dof = 3 * n - 3 if dof is None else dof
    kinetic = 0.5 * KINETIC * np.einsum("n,tnk->t", np.asarray(traj.masses), np.asarray(traj.velocities) ** 2)
    return 2 * kinetic / (dof * BOLTZMANN)


def temperature_summary(values: np.ndarray, dof: int, target: Optional[float] = None) -> dict:
    """Mean and standard deviation of a temperature series (K) against the canonical ensemble's:
    the mean's deviation from ``target`` and the standard deviation's ratio to sqrt(2 / N_f) x target."""
    values = np.asarray(values, dtype=float)
    out = {"mean": float(values.mean()), "std": float(values.std()), "dof": int(dof)}
    if target:
        expected = float(np.sqrt(2.0 / dof) * target)
        out.update(target=float(target), mean_error=float(values.mean() / target - 1), expected_std=expected,
                   std_ratio=float(values.std() / expected))
    return out

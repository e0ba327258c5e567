"""Radial distribution functions of periodic trajectories; distance distributions of molecules."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from mlip.graph.neighbors import neighbor_list_numpy


def pair_distribution(traj, pair: Tuple[int, int], r_max: float = 6.0, bins: int = 120,
                      every: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(r (bins,) Å, g (bins,)) of the element pair ``pair`` (atomic numbers) over the frames of
    ``traj`` (a Trajectory: positions (T,N,3), cells, pbc, numbers), every ``every``-th frame.

    Periodic in all three directions: the radial distribution function g(r), normalised by the
    ideal gas of the same density (g -> 1 at large r). Otherwise: the distribution of the pair's
    distances within ``r_max`` as a density of unit area (a molecule's g(r) has no density to
    refer to)."""
    a, b = pair
    edges = np.linspace(0.0, r_max, bins + 1)
    counts = np.zeros(bins)
    numbers = np.asarray(traj.numbers)
    is_a, is_b = numbers == a, numbers == b
    if not is_a.any() or not is_b.any():
        raise ValueError(f"the trajectory has no {a}-{b} pairs (elements {sorted(set(numbers.tolist()))})")
    periodic = bool(np.all(traj.pbc))
    volume, frames = 0.0, 0
    for t in range(0, len(traj.positions), every):
        pos, cell = traj.positions[t], traj.cells[t]
        i, j, shift = neighbor_list_numpy(pos, cell, traj.pbc, r_max)
        keep = is_a[i] & is_b[j]
        d = np.linalg.norm(pos[j[keep]] - pos[i[keep]] + shift[keep] @ cell, axis=1)
        counts += np.histogram(d, edges)[0]
        volume += abs(np.linalg.det(cell)) if periodic else 0.0
        frames += 1
    r = 0.5 * (edges[1:] + edges[:-1])
    if not periodic:
        total = counts.sum() * (edges[1] - edges[0])
        return r, counts / total if total > 0 else counts
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    density_b = is_b.sum() / (volume / frames)  # b atoms per Å^3
    return r, counts / (frames * is_a.sum() * density_b * shell)


def distribution_difference(reference: np.ndarray, other: np.ndarray, r: np.ndarray) -> float:
    """∫|other - reference| dr / ∫ reference dr: the relative L1 difference of two distributions on
    the same grid r (0: identical)."""
    dr = np.gradient(r)
    return float(np.sum(np.abs(other - reference) * dr) / max(np.sum(np.abs(reference) * dr), 1e-30))

"""A deliberately naive neighbour list (every pair, every image in a generous box) to test against."""

import itertools

import numpy as np


def brute_force_neighbors(pos, cell, pbc, cutoff):
    """Set of (source, target, sx, sy, sz) with |pos[t] - pos[s] + S @ cell| < cutoff, no self pair at S=0."""
    pos = np.asarray(pos, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    ranges = [0, 0, 0]
    if pbc.any():
        inv = np.linalg.inv(cell)
        frac = pos @ inv
        spread = np.ceil(frac.max(axis=0) - frac.min(axis=0)).astype(int)
        spacing = 1.0 / np.linalg.norm(inv, axis=0)
        ranges = [int(np.ceil(cutoff / spacing[k])) + spread[k] + 1 if pbc[k] else 0 for k in range(3)]
    out = set()
    for shift in itertools.product(*(range(-r, r + 1) for r in ranges)):
        d = np.linalg.norm(pos[None, :, :] + np.asarray(shift) @ cell - pos[:, None, :], axis=-1)
        for s, t in zip(*np.nonzero(d < cutoff)):
            if s == t and not any(shift):
                continue
            out.add((int(s), int(t), *shift))
    return out

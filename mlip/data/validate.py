"""Checks every frame passes before it reaches a model; each failure names file, frame and key."""

from __future__ import annotations

import numpy as np
import torch

from mlip.data.errors import DataError

MAX_Z = 118


def _check_finite(data, key, source, frame):
    if key in data:
        value = data[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = (~torch.isfinite(value)).reshape(value.shape[0], -1).any(dim=-1).nonzero().reshape(-1)
            what = "NaN" if bool(torch.isnan(value).any()) else "inf"
            raise DataError(f"contains {what} (at rows {bad[:5].tolist()})", source, frame, key)


def validate(data, source=None, frame=None, min_distance: float = 0.1) -> None:
    """Raise :class:`DataError` if ``data`` (one AtomicData) is malformed.

    Checks shapes, NaN/inf, element numbers (1..118), that cells with periodic directions are not
    singular along them, and that no two atoms (periodic images included) are closer than
    ``min_distance`` Å.
    """
    n = data.pos.shape[0] if data.pos.dim() == 2 else -1
    expected = {
        "pos": (n, 3), "atomic_numbers": (n,), "cell": (1, 3, 3), "pbc": (1, 3),
        "forces": (n, 3), "energy": (1,), "stress": (1, 3, 3), "fixed": (n,), "tags": (n,), "magmom": (n,),
    }
    if n < 0:
        raise DataError(f"pos has shape {tuple(data.pos.shape)}; expected (N, 3)", source, frame, "pos")
    if n == 0:
        raise DataError("structure has no atoms", source, frame, "pos")
    for key, shape in expected.items():
        if key in data and tuple(data[key].shape) != shape:
            raise DataError(f"has shape {tuple(data[key].shape)}; expected {shape} for {n} atoms",
                            source, frame, key)
    for key in ("pos", "cell", "energy", "forces", "stress", "magmom"):
        _check_finite(data, key, source, frame)
    z = data.atomic_numbers
    bad = ((z < 1) | (z > MAX_Z)).nonzero().reshape(-1)
    if bad.numel():
        raise DataError(f"unknown element Z={int(z[bad[0]])} at atom {int(bad[0])}", source, frame,
                        "atomic_numbers")
    pbc = data.pbc.reshape(3).cpu().numpy()
    cell = data.cell.reshape(3, 3).double().cpu().numpy()
    if pbc.any():
        vectors = cell[pbc]
        lengths = np.linalg.norm(vectors, axis=1)
        rank = np.linalg.matrix_rank(vectors, tol=1e-6 * max(1.0, lengths.max()))
        if rank < len(vectors):
            raise DataError(f"cell {cell.tolist()} is singular along its periodic directions "
                            f"(pbc={pbc.tolist()})", source, frame, "cell")
    if min_distance > 0:
        from mlip.graph.neighbors import closest_pair

        pair = closest_pair(data.pos.double().cpu().numpy(), cell, pbc, min_distance)
        if pair is not None:
            i, j, shift, d = pair
            raise DataError(f"atoms {i} and {j} are {d:.4f} Å apart (image {shift.tolist()}), "
                            f"closer than {min_distance} Å", source, frame, "pos")

"""Batching structures that do not all carry the same fields (a molecule without stress beside a
crystal with it): missing targets are filled with NaN, which losses and metrics mask out."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

# field: (per "atom" or "structure", trailing shape, fill value, dtype)
OPTIONAL = {
    "energy": ("structure", (), float("nan"), torch.float64),
    "stress": ("structure", (3, 3), float("nan"), torch.float64),
    "forces": ("atom", (3,), float("nan"), torch.float64),
    "magmom": ("atom", (), float("nan"), torch.float64),
    "fixed": ("atom", (), False, torch.bool),
    "tags": ("atom", (), 0, torch.long),
    "idx": ("structure", (), -1, torch.long),
}


def collate(data_list, cutoff: float | None = None, max_neighbors: int | None = None) -> Batch:
    """One Batch from AtomicData of mixed kinds; with ``cutoff``, graphs are built first (per
    structure, so edges never cross structures). Optional fields missing from some structures are
    filled (NaN targets, ``fixed`` False, ``tags`` 0, ``idx`` -1, ``name`` "") so that every structure has the same keys."""
    from mlip.graph.build import build_graph

    present = set().union(*(set(d.keys()) for d in data_list)) if data_list else set()
    filled = []
    for data in data_list:
        missing = [k for k in OPTIONAL if k in present and k not in data]
        if missing or cutoff is not None or ("name" in present and "name" not in data):
            data = data.clone()
        for key in missing:
            per, shape, fill, dtype = OPTIONAL[key]
            rows = data.num_nodes if per == "atom" else 1
            data[key] = torch.full((rows, *shape), fill, dtype=dtype)
        if "name" in present and "name" not in data:
            data.name = ""
        if cutoff is not None:
            build_graph(data, cutoff, max_neighbors)
        filled.append(data)
    return Batch.from_data_list(filled)

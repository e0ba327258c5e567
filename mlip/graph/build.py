"""build_graph: radius graph with periodic images for one structure or a batch of them."""

from __future__ import annotations

import torch

from mlip.graph.edges import edge_vectors
from mlip.graph.neighbors import cap_neighbors, neighbor_list_numpy, neighbor_list_torch

# Above this many atoms the O(N^2) torch search loses to vesin's cell list even on a GPU, and the
# round trip of positions to the CPU costs less than the search.
TORCH_MAX_ATOMS = 4096


def _structure_slices(data):
    """(start, stop) atom ranges of the structures in ``data`` (one for a single AtomicData)."""
    ptr = getattr(data, "ptr", None)
    if ptr is None:
        return [(0, int(data.pos.shape[0]))]
    ptr = ptr.tolist()
    return list(zip(ptr[:-1], ptr[1:]))


def radius_graph_pbc(pos, cell, pbc, cutoff: float, max_neighbors: int | None = None,
                     backend: str = "auto"):
    """Neighbour list of one structure as torch tensors: (edge_index (2,E), cell_shifts (E,3) long).

    ``backend``: "vesin" (cell list on the CPU), "torch" (all pairs on the tensors' device), or
    "auto": torch for CUDA tensors of up to ``TORCH_MAX_ATOMS`` atoms, vesin otherwise.
    """
    device = pos.device
    if backend == "auto":
        backend = "torch" if device.type == "cuda" and pos.shape[0] <= TORCH_MAX_ATOMS else "vesin"
    if backend == "vesin":
        i, j, s = neighbor_list_numpy(pos.detach().cpu().numpy(), cell.detach().cpu().numpy().reshape(3, 3),
                                      pbc.detach().cpu().numpy().reshape(3), cutoff)
        source, target, shifts = (torch.from_numpy(x).to(device) for x in (i, j, s))
    elif backend == "torch":
        source, target, shifts = neighbor_list_torch(pos, cell, pbc, cutoff)
    else:
        raise ValueError(f"unknown neighbour-list backend {backend!r}; use 'auto', 'vesin' or 'torch'")
    if max_neighbors is not None:
        vec = edge_vectors(pos.detach().double(), cell.detach().double(), torch.stack([source, target]), shifts)
        keep = cap_neighbors(source, target, vec.norm(dim=-1), shifts, int(max_neighbors))
        source, target, shifts = source[keep], target[keep], shifts[keep]  # sorted by target
    else:  # by receiver, as the deterministic segmented sum of mlip.kernels wants them
        order = torch.sort(target, stable=True).indices
        source, target, shifts = source[order], target[order], shifts[order]
    return torch.stack([source, target]), shifts


def build_graph(data, cutoff: float, max_neighbors: int | None = None, backend: str = "auto"):
    """Write ``edge_index`` (2,E) [source, target] and ``cell_shifts`` (E,3) onto ``data``.

    Works on one AtomicData or a torch_geometric Batch of them (molecules and crystals mixed);
    edges never cross structures and come sorted by target (receiver). With ``max_neighbors`` each atom keeps its nearest sources,
    ties broken deterministically. Returns ``data`` itself.
    """
    cells = data.cell.reshape(-1, 3, 3)
    pbcs = data.pbc.reshape(-1, 3)
    edge_parts, shift_parts = [], []
    for b, (start, stop) in enumerate(_structure_slices(data)):
        ei, sh = radius_graph_pbc(data.pos[start:stop], cells[b], pbcs[b], cutoff, max_neighbors, backend)
        edge_parts.append(ei + start)
        shift_parts.append(sh)
    data.edge_index = torch.cat(edge_parts, dim=1)
    data.cell_shifts = torch.cat(shift_parts, dim=0)
    return data

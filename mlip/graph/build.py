"""build_graph: radius graph with periodic images for one structure or a batch of them."""

from __future__ import annotations

import warnings

import torch

from mlip.graph.edges import edge_vectors
from mlip.graph.neighbors import cap_neighbors, neighbor_list_torch, neighbor_list_vesin

# The all-pairs torch search is O(N^2): where vesin's CUDA path cannot run, CUDA structures up to
# this many atoms take it on the device, larger ones vesin on the CPU (no limit on either device).
TORCH_MAX_ATOMS = 4096
_warned_devices: set = set()


def _vesin_on_device(pos, cell, pbc, cutoff: float):
    """vesin on the tensors' device; where its CUDA path fails, the torch path (or vesin on the CPU
    for large structures), with a one-time warning."""
    try:
        return neighbor_list_vesin(pos, cell, pbc, cutoff)
    except Exception as error:  # noqa: BLE001 - e.g. a vesin built without CUDA, no CUDA runtime found
        if pos.device.type == "cpu":
            raise
        if pos.device.type not in _warned_devices:
            _warned_devices.add(pos.device.type)
            warnings.warn(f"vesin's neighbour list failed on {pos.device} ({type(error).__name__}: {error}); "
                          f"using mlip's all-pairs torch search up to {TORCH_MAX_ATOMS} atoms and vesin on the "
                          f"CPU beyond", RuntimeWarning, stacklevel=3)
        if pos.shape[0] <= TORCH_MAX_ATOMS:
            return neighbor_list_torch(pos, cell, pbc, cutoff)
        return tuple(x.to(pos.device) for x in neighbor_list_vesin(pos.cpu(), cell.cpu(), pbc.cpu(), cutoff))


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

    ``backend``: "vesin" (a cell list on the tensors' device: CPU, or vesin's CUDA path),
    "torch" (all pairs on the tensors' device), or "auto" (vesin; on CUDA, where vesin's CUDA path
    fails, the torch path up to ``TORCH_MAX_ATOMS`` atoms and vesin on the CPU beyond, warned once).
    """
    if backend == "auto":
        source, target, shifts = _vesin_on_device(pos, cell, pbc, cutoff)
    elif backend == "vesin":
        source, target, shifts = neighbor_list_vesin(pos, cell, pbc, cutoff)
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

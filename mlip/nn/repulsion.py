"""Short-range repulsion prior: the ZBL universal screened nuclear repulsion (Ziegler, Biersack and
Littmark, *The Stopping and Range of Ions in Solids*, 1985), placed where the training data is silent.

    V(r) = k Z_i Z_j / r * phi(r / a),   a = 0.8854 a0 / (Z_i^0.23 + Z_j^0.23)
    phi(x) = 0.18175 e^(-3.1998 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.4029 x) + 0.02817 e^(-0.20162 x)

with k = e^2 / (4 pi eps0) = 14.399645 eV Å and a0 the Bohr radius. Each element pair has a window
[r_in, r_out]: below r_in the full ZBL acts, beyond r_out nothing, the quintic smooth step between
(value, first and second derivative continuous: C2). Each directed edge carries half its pair's
energy, so a graph with both directions of every pair counts each pair once.

The window: where the training data has the pair, [0.75, 1.0] x r_min, r_min the shortest distance
the pair has in the training split (``set_pair_min_distance``, from the statistics pass); so the
prior is zero at every distance the model was fitted on. Elsewhere the covalent rule, [0.4, 0.75]
x d (d: the sum of the two covalent radii, Cordero et al. 2008 as in ase.data; r_out never passes
the graph cutoff): it ends before real bonds begin.

In the top of the window, [0.95, 1.0] x r_out, the learned part stops seeing the pair come closer
(``learned_edge_vectors``): the edge vector the architecture receives keeps its direction, and its
length r is replaced by f(r), f(r) = r beyond r_out, f constant (0.975 r_out) below 0.95 r_out, f'
the smooth step between (C3). Below 0.95 r_out the learned energy of the pair no longer changes with
its distance while the switched ZBL energy rises (both its factors grow as r falls), so a dimer
pushed closer rises monotonically, whatever the weights. Model files written before the data-placed
windows existed load with the covalent rule and without this (``freeze_learned`` False) and give
the energies they gave.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from mlip.nn.scatter import scatter_sum

COULOMB = 14.399645  # e^2 / (4 pi eps0), eV Å
BOHR = 0.529177210903  # Å


def zbl_energy(z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Unswitched ZBL pair energy (eV) of atomic numbers ``z_i``, ``z_j`` at distance ``r`` (Å), any shape.
    (Numbers written out: TorchScript reads no module globals; 0.4685335 Å = 0.8854 BOHR.)"""
    zi, zj = z_i.to(r.dtype), z_j.to(r.dtype)
    x = r * (zi.pow(0.23) + zj.pow(0.23)) / 0.46853350
    phi = (0.18175 * torch.exp(-3.19980 * x) + 0.50986 * torch.exp(-0.94229 * x)
           + 0.28022 * torch.exp(-0.40290 * x) + 0.02817 * torch.exp(-0.20162 * x))
    return 14.399645 * zi * zj / r * phi


def smooth_step_off(t: torch.Tensor) -> torch.Tensor:
    """1 for t <= 0, 0 for t >= 1, 1 - (10 t^3 - 15 t^4 + 6 t^5) between (C2 at both ends)."""
    t = t.clamp(0.0, 1.0)
    return 1.0 - t * t * t * (10.0 + t * (-15.0 + 6.0 * t))


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL repulsion energies (eV) from the graph, switched off across each element pair's
    window (module docstring), and the edge vectors the learned part sees.

    Args:
        cutoff: the graph's cutoff (Å); the switch ends at or before it.
        inner, outer: the covalent rule's window, as fractions of the pair's covalent distance. The
            default ends the prior before real bonds begin: covalent radii are single-bond radii, and
            triple bonds (C≡C, N≡N, C≡O) lie at 0.77-0.80 of their sums; a prior reaching 1.0 added
            0.41 eV/Å RMS to ethanol's DFT-sampled forces and cost the quickstart 64% force MAE.
        data_inner, data_outer: the window of a pair the training data has, as fractions of its r_min.
        freeze: where the learned part's view of the pair starts to freeze, as a fraction of r_out.
    """

    def __init__(self, cutoff: float, inner: float = 0.4, outer: float = 0.75, data_inner: float = 0.75,
                 data_outer: float = 1.0, freeze: float = 0.95):
        super().__init__()
        if not 0.0 < inner < outer:
            raise ValueError(f"repulsion switch needs 0 < inner < outer, got inner={inner}, outer={outer}")
        if not 0.0 < data_inner < data_outer <= 1.0:
            raise ValueError(f"repulsion switch needs 0 < data_inner < data_outer <= 1, got {data_inner}, {data_outer}")
        if not 0.0 < freeze < 1.0:
            raise ValueError(f"the learned part's freeze starts at a fraction 0 < freeze < 1 of r_out, got {freeze}")
        from ase.data import covalent_radii

        self.cutoff = float(cutoff)
        # the switch's fractions and the pairs' r_min travel in the model file (state_dict), so a file keeps its prior
        self.register_buffer("inner", torch.tensor(float(inner), dtype=torch.float64))
        self.register_buffer("outer", torch.tensor(float(outer), dtype=torch.float64))
        self.register_buffer("data_inner", torch.tensor(float(data_inner), dtype=torch.float64))
        self.register_buffer("data_outer", torch.tensor(float(data_outer), dtype=torch.float64))
        self.register_buffer("freeze", torch.tensor(float(freeze), dtype=torch.float64))
        # Å, symmetric, 0 where the training data does not have the pair (the covalent rule applies)
        self.register_buffer("pair_min_distance", torch.zeros(len(covalent_radii), len(covalent_radii),
                                                              dtype=torch.float64))
        self.register_buffer("freeze_learned", torch.tensor(True))
        self.register_buffer("covalent_radii", torch.as_tensor(covalent_radii, dtype=torch.float64), persistent=False)

    @torch.jit.unused
    def set_pair_min_distance(self, pairs) -> None:
        """``pairs``: [(Z1, Z2, r_min Å), ...], the shortest distance of each element pair in the
        training data (mlip.data.statistics); pairs not listed keep the covalent rule."""
        table = torch.zeros_like(self.pair_min_distance)
        for z1, z2, distance in pairs:
            table[int(z1), int(z2)] = table[int(z2), int(z1)] = float(distance)
        self.pair_min_distance.copy_(table)

    def window(self, z_i: torch.Tensor, z_j: torch.Tensor, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """(r_in, r_out) Å of each pair (any shape): below r_in the ZBL acts fully; beyond r_out
        neither the prior nor the freeze of the learned part does anything."""
        covalent = (self.covalent_radii[z_i] + self.covalent_radii[z_j]).to(dtype)
        r_out = torch.clamp(self.outer.to(dtype) * covalent, max=self.cutoff)
        r_in = torch.minimum(self.inner.to(dtype) * covalent, 0.5 * r_out)
        r_min = self.pair_min_distance[z_i, z_j].to(dtype)
        known = r_min > 0
        r_in = torch.where(known, self.data_inner.to(dtype) * r_min, r_in)
        r_out = torch.where(known, self.data_outer.to(dtype) * r_min, r_out)
        return r_in, r_out

    def pair_energies(self, z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Switched pair energy V(r) s(r) (eV), any shape."""
        r_in, r_out = self.window(z_i, z_j, r.dtype)
        switch = smooth_step_off((r - r_in) / (r_out - r_in))
        near = switch > 0
        safe_r = torch.where(near, r, torch.ones_like(r))  # no exp/1/r work (or NaN gradients) where off
        return torch.where(near, zbl_energy(z_i, z_j, safe_r) * switch, torch.zeros_like(r))

    def learned_edge_vectors(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                             edge_vec: torch.Tensor) -> torch.Tensor:
        """(E,3) the edge vectors the learned part sees: ``edge_vec`` itself beyond each pair's r_out,
        the same direction at length f(r) inside it (module docstring)."""
        r = edge_vec.norm(p=2, dim=-1)
        r_out = self.window(atomic_numbers[edge_index[0]], atomic_numbers[edge_index[1]], r.dtype)[1]
        r_in = self.freeze.to(r.dtype) * r_out
        width = r_out - r_in
        t = ((r - r_in) / width).clamp(0.0, 1.0)
        # f(r) = r_out - width (1/2 - integral of the smooth step from 0 to t); f' = 10 t^3 - 15 t^4 + 6 t^5
        frozen = r_out - width * (0.5 - t ** 4 * (2.5 + t * (-3.0 + t)))
        near = (r < r_out) & self.freeze_learned  # no branch on data: the same graph in exported programs
        scale = torch.where(near, frozen / r.clamp(min=1e-9), torch.ones_like(r))
        return edge_vec * scale.unsqueeze(-1)

    def forward(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        """(N,) per-atom repulsion energies (eV): half of each directed edge's pair energy on its target."""
        r = edge_vec.norm(p=2, dim=-1)
        source, target = edge_index[0], edge_index[1]
        pair = self.pair_energies(atomic_numbers[source], atomic_numbers[target], r)
        return scatter_sum(0.5 * pair, target, atomic_numbers.shape[0])

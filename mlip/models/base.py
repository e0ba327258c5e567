"""The Potential base class: what every architecture shares.

An architecture implements only ``atom_energies`` (the graph to per-atom energies). The base owns
per-element reference energies and the scale/shift of the per-atom output, builds the graph when a
batch has none, applies the symmetric strain that gives the stress, and takes forces and stress
by autograd:

    E = sum_i [scale * (e_i - e_lone(Z_i)) + shift + E_ref(Z_i) + E_rep,i]    eV
    F = -dE/dpos                                    eV/Å
    σ = (1/V) dE/dε  (ε: symmetric strain at 0)     eV/Å^3, ASE sign (positive = tensile)

e_lone(Z) is the architecture's own output for an atom of element Z without neighbours, so that an
isolated atom has exactly the energy E_ref(Z) + shift (shift is 0 unless a config sets it), whatever
the weights: a lone atom's energy is its reference (the DFT energy of the free atom, or the
regression's), not a readout's accident. In training e_lone is evaluated with the weights at every
step (one lone atom per element of the batch rides along in the same pass, as extra graphs without
edges); in eval mode it is a table refreshed by ``eval()`` and by ``load_state_dict``, so inference
and exported models only look it up.
It depends on the weights alone, never on positions: forces and stress do not see it.
E_rep,i is the short-range ZBL repulsion prior (mlip.nn.repulsion; ``repulsion=None``: 0), in eV,
outside the scale: a physical energy the learned part adds to. It takes over in a window below the
shortest distance each element pair has in the training data (``set_statistics``), where the
learned part stops seeing the pair come closer.

Periodicity comes from the pbc flags (B,3), never from the cell's vectors (mlip.graph.periodic): the
stress σ = W/V (W the virial, V the cell's volume) is reported along the periodic directions only,
P σ P with P the projector onto the periodic lattice vectors, so a molecule (in a vacuum box or not)
gets zero stress, a slab its in-plane components (V the box volume, as ASE and VASP take it) and a
structure without a volume zero.

Frame averaging (``frame_averaging="so3"`` or ``"o3"``, for architectures that are not equivariant by
construction): the architecture sees each structure's edge vectors in the F frames of
mlip.nn.frames (``vec @ U``) and the per-atom energies are averaged over them (direct forces turned
back by U^T and averaged), so energies are exactly invariant and forces and stress exactly
equivariant; in training each structure gets one random frame per step (stochastic frame
averaging). Forces stay the gradient of the averaged energy, through the frames. The cost of an
evaluation is F times the architecture's, and the model is no longer local (a frame depends on
every atom of its structure), so MD engines' domain decomposition refuses it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from mlip.graph.edges import edge_vectors
from mlip.graph.periodic import periodic_projector
from mlip.nn.embedding import NUM_ELEMENTS  # noqa: F401  (the models import it from here too)
from mlip.nn.frames import FRAME_GROUPS, structure_frames
from mlip.nn.llpr import LastLayerUncertainty, captured_features
from mlip.nn.repulsion import ZBLRepulsion
from mlip.nn.scatter import scatter_sum


def structure_fields(data) -> Tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
    """(batch (N,), num_graphs, charge (B,), spin (B,)) of a structure or a batch; charge 0 and spin
    multiplicity 1 where the data has none."""
    z = data.atomic_numbers
    batch = data.batch if getattr(data, "batch", None) is not None else z.new_zeros(z.shape[0])
    num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
    charge = data.charge.reshape(-1) if "charge" in data else z.new_zeros(num_graphs)
    spin = data.spin.reshape(-1) if "spin" in data else z.new_ones(num_graphs)
    return batch, num_graphs, charge, spin


def check_species(known_species: torch.Tensor, atomic_numbers: torch.Tensor) -> None:
    """ValueError naming the elements of ``atomic_numbers`` outside ``known_species`` (119,) bool, and
    the ones the model knows (potentials and forecasters alike)."""
    unknown = ~known_species[atomic_numbers]
    if bool(unknown.any()):
        from ase.data import chemical_symbols

        bad = sorted({int(z) for z in atomic_numbers[unknown]})
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in bad)
        raise ValueError(f"this model was not trained on {names}; it knows "
                         f"{', '.join(chemical_symbols[z] for z in known_species.nonzero().flatten().tolist())}")


def set_avg_num_neighbors(model: nn.Module, value: float) -> None:
    """The message normaliser of every block of ``model`` that has one, recorded in its
    hyperparameters so that mlip.load rebuilds the same model (potentials and forecasters alike)."""
    users = [m for m in model.modules() if hasattr(m, "avg_num_neighbors")]
    for module in users:
        module.avg_num_neighbors = float(value)
    if users:
        model.hyperparameters["avg_num_neighbors"] = float(value)


def _refresh_after_load(module, incompatible_keys) -> None:
    if not module.training:
        module.refresh_lone_energies()


class Potential(nn.Module):
    """Base of every architecture. ``forward(batch) -> {"energy" (B,), "forces" (N,3), "stress" (B,3,3)}``.

    Args:
        cutoff: graph cutoff, Å.
        max_neighbors: keep at most this many nearest neighbours per atom (None: all in the cutoff).
        species: atomic numbers the model is meant for; others raise a clear error (None: any).
        repulsion: "zbl" adds the switched ZBL nuclear repulsion (mlip.nn.repulsion) to the learned
            energy, so that atoms pushed together are pushed apart whatever the training data held;
            None leaves it out (model files written before it existed load with None).
        frame_averaging: None, "so3" (4 frames: rotations) or "o3" (8: rotations and reflections); see
            the module docstring. Architectures that are not equivariant by construction offer it.
    """

    name = "potential"
    __jit_unused_properties__ = ["last_layer", "provides_uncertainty", "interaction_hops"]  # eager-only, not scripted

    def __init__(self, cutoff: float, max_neighbors: Optional[int] = None, species=None,
                 repulsion: Optional[str] = "zbl", frame_averaging: Optional[str] = None):
        super().__init__()
        self.cutoff = float(cutoff)
        if frame_averaging is not None and frame_averaging not in FRAME_GROUPS:
            raise ValueError(f"frame_averaging must be None or one of {sorted(FRAME_GROUPS)}, got {frame_averaging!r}")
        # frames per structure (0: no frame averaging)
        self.num_frames = 0 if frame_averaging is None else FRAME_GROUPS[frame_averaging]
        if repulsion not in ("zbl", None):
            raise ValueError(f"repulsion must be 'zbl' or None, got {repulsion!r}")
        self.repulsion: Optional[ZBLRepulsion] = ZBLRepulsion(self.cutoff) if repulsion == "zbl" else None
        self.max_neighbors = max_neighbors
        known = torch.zeros(NUM_ELEMENTS, dtype=torch.bool)
        if species is None:
            known[1:] = True
        else:
            known[torch.as_tensor(list(species), dtype=torch.long)] = True
        self.register_buffer("known_species", known)
        self.register_buffer("reference_energies", torch.zeros(NUM_ELEMENTS))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))
        # e_lone per element (eval mode's table; not in the model file, rebuilt from the weights)
        self.register_buffer("lone_energies", torch.zeros(NUM_ELEMENTS), persistent=False)
        # False only for model files written before lone atoms were referenced (they load unchanged)
        self.register_buffer("lone_reference", torch.tensor(True))
        self.register_load_state_dict_post_hook(_refresh_after_load)
        # a fitted last-layer uncertainty (mlip.nn.llpr), attached after training; not a hyperparameter
        self.uncertainty: Optional[LastLayerUncertainty] = None
        self.hyperparameters: dict = {}
        self.direct_forces = False  # True: forces from atom_energies_and_forces (not conservative)

    # -- to implement ---------------------------------------------------------------------
    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                      spin: torch.Tensor) -> torch.Tensor:
        """(N,) per-atom energies (before scale, shift and reference energies) from the graph."""
        raise NotImplementedError

    def atom_energies_and_forces(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                                 edge_vec: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                 spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N,) energies and (N,3) forces (before scale) for architectures with a direct-force head."""
        e = self.atom_energies(atomic_numbers, edge_index, edge_vec, batch, num_graphs, charge, spin)
        return e, torch.zeros(e.shape[0], 3, dtype=e.dtype, device=e.device)

    @property
    def interaction_hops(self) -> int:
        """How many edges away an atom's energy can feel other atoms: the message-passing layers,
        plus one where the input features already gather the neighbours. The physics suite checks
        it; an MD engine's ghost atoms must reach ``interaction_hops * cutoff`` (mlip lammps-plugin)."""
        raise NotImplementedError(f"{type(self).__name__} does not state its interaction_hops")

    @torch.jit.unused
    def auxiliary_loss(self, batch, progress: Optional[float] = None) -> Optional[torch.Tensor]:
        """A training-only loss term of the architecture's own (None: none), added by the trainer;
        ``progress``: the fraction of the planned training steps done (None: unknown), for schedules."""
        return None

    # -- facts the model declares (the tests and the kernel checks read them) -------------
    # the mlip.kernels its hot paths run (names of mlip.kernels functions)
    kernels: frozenset = frozenset()

    # -- shared ---------------------------------------------------------------------------
    @property
    def exactly_equivariant(self) -> bool:
        """False for models that learn rotational symmetry (training then logs how far they are off)."""
        return True

    @property
    def dtype(self) -> torch.dtype:
        return self.reference_energies.dtype

    def set_statistics(self, reference_energies: Optional[Dict[int, float]] = None, scale: float = 1.0,
                       shift: float = 0.0, avg_num_neighbors: Optional[float] = None,
                       pair_min_distance=None) -> None:
        """Per-element reference energies (eV), scale (eV) and shift (eV/atom) of the output, the
        average neighbour count that normalises messages (for architectures that use one), and the
        shortest distance of each element pair in the training data ([(Z1, Z2, Å), ...]) that places
        the short-range prior (mlip.nn.repulsion)."""
        if pair_min_distance is not None:
            self.set_pair_min_distance(pair_min_distance)
        if avg_num_neighbors is not None:
            set_avg_num_neighbors(self, avg_num_neighbors)
        ref = torch.zeros(NUM_ELEMENTS, dtype=torch.float64)
        for z, e in (reference_energies or {}).items():
            ref[int(z)] = float(e)
        self.reference_energies.copy_(ref)
        self.scale.fill_(float(scale))
        self.shift.fill_(float(shift))

    @torch.jit.unused
    def set_pair_min_distance(self, pairs) -> None:
        """Place the repulsion prior's windows below the shortest distance of each element pair in the
        training data, ``pairs`` [(Z1, Z2, Å), ...] (mlip.data.statistics); nothing without the prior."""
        if self.repulsion is not None:
            self.repulsion.set_pair_min_distance(pairs)

    def lone_atom_energies(self) -> torch.Tensor:
        """(119,) e_lone: the architecture's per-atom output for one atom of each known element with no
        neighbours (neutral, spin multiplicity 1), before scale; 0 for the other elements."""
        species = self.known_species.nonzero().flatten()
        count = species.shape[0]
        dtype = self.reference_energies.dtype
        device = species.device
        e = self.atom_energies(species, torch.zeros(2, 0, dtype=torch.long, device=device),
                               torch.zeros(0, 3, dtype=dtype, device=device),
                               torch.arange(count, device=device), count,
                               torch.zeros(count, dtype=torch.long, device=device),
                               torch.ones(count, dtype=torch.long, device=device))
        table = torch.zeros_like(self.lone_energies, dtype=e.dtype).scatter(0, species, e)
        return torch.where(self.lone_reference, table, torch.zeros_like(table))

    @torch.jit.unused
    def refresh_lone_energies(self) -> None:
        """Recompute eval mode's e_lone table from the current weights (``eval()`` and
        ``load_state_dict`` call it; call it after changing weights by hand in eval mode)."""
        with torch.no_grad():
            self.lone_energies.copy_(self.lone_atom_energies())

    @torch.jit.unused
    def train(self, mode: bool = True):
        super().train(mode)
        if not mode:
            self.refresh_lone_energies()
        return self

    @torch.jit.unused
    def prior(self, data) -> Tuple[float, np.ndarray]:
        """(energy eV, forces (N,3) eV/Å) of one structure under the model's fixed physical prior
        alone (the ZBL repulsion; zeros without one), for statistics taken net of it (mlip.data.statistics)."""
        from mlip.graph.build import build_graph

        n = int(data.atomic_numbers.shape[0])
        if self.repulsion is None:
            return 0.0, np.zeros((n, 3))
        d = build_graph(data.clone(), self.cutoff, self.max_neighbors)
        device = self.reference_energies.device
        pos = d.pos.to(device, torch.float64).detach().requires_grad_(True)
        cell = d.cell.reshape(1, 3, 3).to(device, torch.float64)
        z, edge_index = d.atomic_numbers.to(device), d.edge_index.to(device)
        vec = edge_vectors(pos, cell, edge_index, d.cell_shifts.to(device), torch.zeros_like(z))
        energy = self.repulsion(z, edge_index, vec).sum()
        (grad,) = torch.autograd.grad(energy, pos)
        return float(energy.detach()), (-grad).detach().cpu().numpy()

    def check_species(self, atomic_numbers: torch.Tensor) -> None:
        check_species(self.known_species, atomic_numbers)

    @torch.jit.unused
    def forward(self, data, compute_forces: bool = True, compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        """Energy (B,) eV, forces (N,3) eV/Å, stress (B,3,3) eV/Å^3 of a structure or a batch."""
        if "edge_index" not in data or "cell_shifts" not in data:
            from mlip.graph.build import build_graph

            data = build_graph(data.clone(), self.cutoff, self.max_neighbors)
        z = data.atomic_numbers
        self.check_species(z)
        batch, num_graphs, charge, spin = structure_fields(data)
        args = (data.pos, z, data.cell.reshape(-1, 3, 3), data.pbc.reshape(-1, 3), data.edge_index, data.cell_shifts,
                batch, num_graphs, charge, spin, compute_forces, compute_stress)
        if self.uncertainty is None or self.training:
            return self.compute(*args)
        with captured_features(self) as store:  # the last layer's input: LLPR's features
            out = self.compute(*args)
        features = store[0]
        if self.num_frames > 0:  # the energy is the frames' mean, linear in the last layer's input
            features = features[: self.num_frames * z.shape[0]].reshape(self.num_frames, z.shape[0], -1).mean(0)
        energy_std, forces_std = self.uncertainty(features[: z.shape[0]], batch, num_graphs)
        out["energy_std"] = energy_std.to(out["energy"].dtype)
        out["forces_std"] = forces_std.to(out["energy"].dtype)
        return out

    @property
    def provides_uncertainty(self) -> bool:
        """True once a last-layer uncertainty is fitted (``mlip.uncertainty.attach_last_layer``)."""
        return self.uncertainty is not None

    @property
    def last_layer(self) -> nn.Linear:
        """The Linear whose (N, 1) output is the per-atom energy (its input: the features of the
        last-layer uncertainty); each architecture names its own."""
        raise NotImplementedError(f"{type(self).__name__} does not name its last layer")

    def total_atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                            batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                            spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N,) per-atom energies in eV (scale, shift, reference energies, lone-atom reference and
        the repulsion prior applied) and (N,3) direct forces (empty unless ``direct_forces``), from
        the edge vectors (E,3) Å, ``pos[target] - pos[source]`` with any image offset included.

        Atom i's energy depends only on atoms within ``interaction_hops`` edges of it: what an MD
        engine's domain decomposition relies on (mlip.export.scripted.ScriptablePotential.lammps).
        """
        z = atomic_numbers
        dtype = edge_vec.dtype
        n = z.shape[0]
        nodes, node_batch, graphs, node_charge, node_spin = z, batch, num_graphs, charge, spin
        lone_species = z[:0]
        if self.training:  # e_lone with the current weights: one lone atom per element, as extra graphs
            lone_species = torch.unique(z)
            count = lone_species.shape[0]
            nodes = torch.cat([z, lone_species])
            node_batch = torch.cat([batch, num_graphs + torch.arange(count, device=z.device)])
            graphs = num_graphs + count
            node_charge = torch.cat([charge, charge.new_zeros(count)])
            node_spin = torch.cat([spin, spin.new_ones(count)])
        direct = torch.zeros(0, 3, dtype=dtype, device=edge_vec.device)
        # below each pair's short-range window the learned part no longer sees the pair come closer
        learned_vec = edge_vec if self.repulsion is None else self.repulsion.learned_edge_vectors(z, edge_index, edge_vec)
        if self.direct_forces:
            e_all, direct = self.atom_energies_and_forces(nodes, edge_index, learned_vec, node_batch, graphs,
                                                          node_charge, node_spin)
            direct = direct[:n]
        else:
            e_all = self.atom_energies(nodes, edge_index, learned_vec, node_batch, graphs, node_charge, node_spin)
        e_atom = e_all[:n]
        if self.training:
            lone = torch.zeros_like(self.lone_energies, dtype=e_all.dtype).scatter(0, lone_species, e_all[n:])
            lone = torch.where(self.lone_reference, lone, torch.zeros_like(lone))
        else:
            lone = self.lone_energies
        e_atom = (e_atom - lone[z]) * self.scale + self.shift + self.reference_energies[z]
        if self.repulsion is not None:
            e_atom = e_atom + self.repulsion(z, edge_index, edge_vec)
        return e_atom, direct

    def structure_atom_energies(self, pos: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                                atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                                batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``total_atom_energies`` of whole structures (positions (N,3) Å, cells (B,3,3) and pbc (B,3) given), with
        frame averaging when the model uses it: the mean over each structure's frames in evaluation,
        one random frame per structure in training. Returns (N,) eV and (N,3) direct forces or (0,3)."""
        if self.num_frames == 0:
            return self.total_atom_energies(atomic_numbers, edge_index, edge_vec, batch, num_graphs, charge, spin)
        frames = structure_frames(pos, cell, pbc, batch, num_graphs, self.num_frames)  # (B,F,3,3)
        if self.training:  # stochastic frame averaging
            pick = torch.randint(0, self.num_frames, [num_graphs], device=pos.device)
            frames = frames[torch.arange(num_graphs, device=pos.device), pick].unsqueeze(1)
        f = frames.shape[1]
        n = atomic_numbers.shape[0]
        copies = torch.arange(f, device=pos.device)
        # copy k of structure b is graph k * B + b; its atoms and edges are offset by k * N
        z = atomic_numbers.repeat(f)
        graph = (batch.unsqueeze(0) + copies.unsqueeze(1) * num_graphs).reshape(-1)
        edges = (edge_index.unsqueeze(1) + copies.view(1, f, 1) * n).reshape(2, -1)
        rotations = frames[batch[edge_index[1]]]  # (E,F,3,3)
        vec = torch.einsum("ei,efij->fej", edge_vec, rotations).reshape(-1, 3)
        e_all, direct = self.total_atom_energies(z, edges, vec, graph, f * num_graphs, charge.repeat(f),
                                                 spin.repeat(f))
        e_atom = e_all.reshape(f, n).mean(0)
        if direct.shape[0] > 0:  # frame components back to lab axes: f_i = sum_j U_ij f'_j
            direct = torch.einsum("fnj,nfij->ni", direct.reshape(f, n, 3), frames[batch]) / f
        return e_atom, direct

    def compute(self, pos: torch.Tensor, atomic_numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
                edge_index: torch.Tensor, cell_shifts: torch.Tensor, batch: torch.Tensor, num_graphs: int,
                charge: torch.Tensor, spin: torch.Tensor, compute_forces: bool = True,
                compute_stress: bool = True) -> Dict[str, torch.Tensor]:
        """The graph to energy, forces and stress (TorchScript-compatible; what exported models run).

        Args:
            pos: (N,3) Å.
            atomic_numbers: (N,).
            cell: (B,3,3) Å, rows are lattice vectors.
            pbc: (B,3) bool, the periodic directions (mlip.graph.periodic).
            edge_index: (2,E) [source, target].
            cell_shifts: (E,3) integer image offsets: edge vector ``pos[target] - pos[source] + cell_shifts @ cell``.
            batch: (N,) structure index of each atom.
            num_graphs: B.
            charge, spin: (B,) total charge (e) and spin multiplicity.
            compute_forces, compute_stress: what to return besides the energy.
        """
        dtype = self.reference_energies.dtype
        z = atomic_numbers
        pos = pos.to(dtype)
        cell = cell.reshape(-1, 3, 3).to(dtype)
        pbc = pbc.reshape(-1, 3).to(torch.bool)
        if compute_forces:
            pos = pos.detach().requires_grad_(True)
        strain = torch.zeros(num_graphs, 3, 3, dtype=dtype, device=pos.device)
        pos_used, cell_used = pos, cell
        if compute_stress:
            strain.requires_grad_(True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos_used = pos + torch.einsum("ni,nij->nj", pos, sym[batch])
            cell_used = cell + torch.bmm(cell, sym)
        vec = edge_vectors(pos_used, cell_used, edge_index, cell_shifts, batch)
        e_atom, direct = self.structure_atom_energies(pos_used, cell_used, pbc, z, edge_index, vec, batch,
                                                      num_graphs, charge, spin)
        energy = scatter_sum(e_atom, batch, num_graphs)
        out: Dict[str, torch.Tensor] = {"energy": energy}
        inputs: List[torch.Tensor] = []
        if compute_forces and self.direct_forces:
            out["forces"] = direct * self.scale
        elif compute_forces:
            inputs.append(pos)
        if compute_stress:
            inputs.append(strain)
        if len(inputs) > 0:
            grads = torch.autograd.grad([energy.sum()], inputs, create_graph=self.training, allow_unused=True)
            if compute_forces and not self.direct_forces:
                g = grads[0]
                out["forces"] = -g if g is not None else torch.zeros_like(pos)
            if compute_stress:
                g = grads[len(grads) - 1]
                virial = g if g is not None else torch.zeros_like(strain)
                volume = torch.linalg.det(cell).abs()
                has_volume = volume > 1e-9
                safe = torch.where(has_volume, volume, torch.ones_like(volume))
                along = periodic_projector(cell.detach(), pbc)  # the periodic directions only
                stress = along @ (virial / safe[:, None, None]) @ along
                out["stress"] = torch.where(has_volume[:, None, None], stress, torch.zeros_like(virial))
        return out

    # -- files ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model file (mlip.models.file: architecture name, hyperparameters, weights,
        statistics) atomically; ``mlip.load`` reads it back."""
        from mlip.models.file import save

        save(self, path)

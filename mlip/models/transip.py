"""TransIP: a transformer over atoms that is not equivariant by construction and learns SO(3)
equivariance in its embedding space (Elhag, Raja, Morehead, Blau, Morris, Bronstein, "Learning
Inter-Atomic Potentials without Explicit Equivariance", 2025, arXiv 2510.00027).

Atoms are tokens: element embedding + total charge and spin of the structure (+ optionally a learned
projection of the atom's position relative to the centre of its surroundings, ``position_encoding=
"offset"``, or rotary encodings of positions in attention, "rotary"). Each atom attends to the atoms
within the cutoff (for molecules with the molecular presets' 12 Å, every atom of the structure; for
periodic cells, its neighbours, so the cost stays linear in the number of atoms), with keys and
values that carry a learned projection of the relative position vector; pre-norm residual blocks
with feed-forward layers; per-atom energies from the final token embeddings; forces by the gradient
of the energy (default) or a direct per-atom head (``direct_forces``).

Learned equivariance (training only, ``alignment_weight`` > 0): a transformation network T takes a
structure's atom embeddings z and a rotation R and predicts the embeddings of the rotated structure;
an InfoNCE loss pulls T(z_i, R) towards the embedding z_i(R x) the encoder gives atom i of the rotated
structure and away from those of the other atoms of the batch, other structures' included
(``auxiliary_loss``). Nothing extra runs at inference time.
The baseline of the paper is the same model with ``alignment_weight=0`` trained with
``data.augment_rotations=true``.

This project's choices (the paper's method section was not reachable from here): by default no
position term beyond the relative vectors of the pair features (the other two delay force learning,
see ``position_encoding``) and a vector shared by all tokens; the "offset" option's "centre" is the
envelope-weighted mean of the neighbours' positions (for a fully connected molecule, the centroid
up to a factor; for a crystal, a local centre, which keeps the energy extensive and smooth at the
cutoff); attention uses the neighbour-table layout of mlip.nn.neighbor_attention (slot 0 the
atom itself) with the cutoff envelope as key bias; T is residual, z + MLP([z, vec(R)]) with the MLP's
last layer starting at zero, so T starts as the identity (without the residual, alignment slowed
force learning and left a larger rotation error than augmentation alone); the contrast is
between atoms (cosine similarity, temperature ``alignment_temperature``): contrasting mean-pooled
structures failed on single-molecule data such as rMD17, whose conformers pool to nearly the same
vector (the loss stayed at log B).
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple

import torch
from torch import nn

from mlip.models import register
from mlip.models.base import NUM_ELEMENTS, Potential, structure_fields
from mlip.nn import ChargeSpinEmbedding, scatter_sum
from mlip.nn.feed_forward import feed_forward
from mlip.nn.neighbor_attention import NeighborAttention, neighbor_table, to_slots
from mlip.nn.radial import GaussianBasis, PolynomialEnvelope

POSITION_ENCODINGS = ("none", "offset", "rotary")


class TransformerBlock(nn.Module):
    """Pre-norm attention of each atom over its neighbour slots, then a feed-forward layer.
    forward(h (N,H), pair (N,K,H) relative-geometry features, index (N,K), bias (N,K), positions
    (N,K,3) Å for rotary encodings or None) -> (N,H)."""

    def __init__(self, hidden: int, heads: int, ffn_multiplier: int, rotary_wavelength: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.attention = NeighborAttention(hidden, heads, rotary_wavelength=rotary_wavelength)
        self.norm_ffn = nn.LayerNorm(hidden)
        self.ffn = feed_forward(hidden, ffn_multiplier)

    def forward(self, h: torch.Tensor, pair: torch.Tensor, index: torch.Tensor, bias: torch.Tensor,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.norm(h)
        tokens = x[index] + pair  # slot 0: the atom itself (pair features of a zero vector)
        h = h + self.attention(tokens, bias, None, positions)[:, 0]
        return h + self.ffn(self.norm_ffn(h))


@register("transip")
class TransIP(Potential):
    """TransIP potential.

    Args:
        cutoff: Å (attention range). hidden, num_layers, heads: transformer sizes. num_basis:
            Gaussians of the distance in the pair features. ffn_multiplier: feed-forward width / hidden.
        alignment_weight: weight of the learned-equivariance loss (0: none, the augmentation baseline).
        alignment_temperature: InfoNCE temperature. alignment: "atom" (each atom's embedding) or
            "structure" (the paper's: mean-pooled structure embeddings, contrasted across the batch).
        alignment_warmup, alignment_final: the weight's schedule over training (``alignment_scale``):
            rises over this fraction of the steps, then falls (cosine) to this multiple of itself.
        position_encoding: where atoms' positions enter besides the pair features (the relative
            vectors x_j - x_i of keys and values, always there): "none" (default: nowhere else),
            "offset" (a learned projection of the atom's position relative to the centre of its
            surroundings, added to its token) or "rotary" (the paper's: rotary encodings of positions in
            every attention layer, mlip.nn.rotary). Measured (benchmarks/bench_transip_positions.py): the
            extra position terms make every token depend on the structure's orientation from the first
            step, and force learning waits longer before it starts (mean test force MAE after 600
            steps: none 268, offset 353, rotary 348 meV/Å). direct_forces: a per-atom force head (not
            conservative; warns). charge_spin: embed total charge and spin (OMol25). species,
            repulsion, max_neighbors, frame_averaging: as Potential.
    """

    kernels = frozenset({"segment_sum", "neighbor_attention"})

    presets = {
        "small": dict(cutoff=4.0, hidden=16, num_layers=2, heads=2, num_basis=8, alignment_weight=0.1,
                      max_neighbors=24),
        # experiment=quickstart / rMD17 molecules: every atom of a molecule within 12 Å
        "quickstart": dict(cutoff=12.0, hidden=64, num_layers=3, heads=4, num_basis=16, alignment_weight=0.1),
        # OMol25-style data: charge and spin embedded
        "omol": dict(cutoff=12.0, hidden=256, num_layers=8, heads=8, num_basis=32, alignment_weight=0.1,
                     charge_spin=True, max_neighbors=64),
    }

    def __init__(self, cutoff: float = 12.0, hidden: int = 128, num_layers: int = 4, heads: int = 8,
                 num_basis: int = 16, ffn_multiplier: int = 2, alignment_weight: float = 0.1,
                 alignment_temperature: float = 0.1, alignment: str = "atom", alignment_warmup: float = 0.0,
                 alignment_final: float = 1.0, position_encoding: str = "none", direct_forces: bool = False,
                 charge_spin: bool = False,
                 species=None, repulsion: Optional[str] = "zbl", max_neighbors: Optional[int] = None,
                 frame_averaging: Optional[str] = None):
        super().__init__(cutoff, max_neighbors, species, repulsion, frame_averaging)
        if alignment not in ("atom", "structure"):
            raise ValueError(f"alignment must be 'atom' or 'structure', got {alignment!r}")
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(f"position_encoding must be one of {POSITION_ENCODINGS}, got {position_encoding!r}")
        if not 0.0 <= alignment_warmup < 1.0 or alignment_final < 0.0:
            raise ValueError(f"alignment_warmup must be in [0, 1) and alignment_final >= 0; got {alignment_warmup}, "
                             f"{alignment_final}")
        self.hidden = hidden
        self.alignment = alignment
        self.alignment_warmup, self.alignment_final = float(alignment_warmup), float(alignment_final)
        self.rotary = position_encoding == "rotary"
        self.offset = position_encoding == "offset"
        self.slots_cap = int(max_neighbors or 0)
        self.alignment_weight = float(alignment_weight)
        self.alignment_temperature = float(alignment_temperature)
        self.max_alignment_atoms = 512
        self.envelope = PolynomialEnvelope(cutoff)
        self.basis = GaussianBasis(num_basis, cutoff)
        self.element = nn.Embedding(NUM_ELEMENTS, hidden)
        # small, so that the geometry terms are not drowned at the start (this project's choice: with
        # unit-variance element embeddings, 80 Adam steps on 8 ethanol frames left the force loss at 0.056;
        # with std 0.1, 0.026)
        nn.init.normal_(self.element.weight, std=0.1)
        # a vector shared by every token, larger than the element embeddings at the start: tokens begin
        # nearly alike, so attention starts close to uniform and each atom's first embeddings are smooth
        # sums of its pair features (a two-body model); force learning then starts within ~200 Adam steps
        # instead of ~500 (benchmarks/bench_transip_positions.py)
        self.token = nn.Parameter(0.3 * torch.randn(hidden))
        # the token's position: relative to its surroundings' centre ("offset"), or rotary encodings in attention
        self.position: nn.Module = (nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
                                    if self.offset else nn.Identity())
        self.pair = nn.Sequential(nn.Linear(3 + num_basis, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.charge_spin = ChargeSpinEmbedding(hidden) if charge_spin else None
        rotary_wavelength = 4.0 * cutoff if self.rotary else 0.0  # longer than any span of a neighbour sequence
        self.blocks = nn.ModuleList([TransformerBlock(hidden, heads, ffn_multiplier, rotary_wavelength)
                                     for _ in range(num_layers)])
        self.norm = nn.LayerNorm(hidden)
        self.energy_head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.energy_head[-1].weight)
        self.direct_forces = bool(direct_forces)
        self.force_head: nn.Module = nn.Linear(hidden, 3) if direct_forces else nn.Identity()
        # the transformation network of the alignment loss (training only; absent in the baseline)
        self.transform: nn.Module = nn.Identity()
        if self.alignment_weight > 0:
            # residual, last layer zero: T starts as the identity (an invariant encoder satisfies it at once)
            self.transform = nn.Sequential(nn.Linear(hidden + 9, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)
        if self.direct_forces:
            warnings.warn("TransIP with direct_forces=True predicts forces from a separate head: they are not the "
                          "gradient of the energy, so MD with them does not conserve energy", stacklevel=2)

    @property
    def exactly_equivariant(self) -> bool:
        return self.num_frames > 0  # with frame averaging (in evaluation)

    def embeddings(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                   batch: torch.Tensor, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        """(N, hidden) final atom embeddings (the latent space the alignment loss shapes)."""
        source, target = edge_index[0], edge_index[1]
        n = atomic_numbers.shape[0]
        r = edge_vec.norm(p=2, dim=-1)
        env = self.envelope(r)
        h = (self.element(atomic_numbers) + self.token).to(edge_vec.dtype)
        if self.offset:  # position relative to the (envelope-weighted) centre of the atom's surroundings
            weight = scatter_sum(env, target, n)
            offset = scatter_sum(env.unsqueeze(-1) * edge_vec, target, n) / (1.0 + weight).unsqueeze(-1)
            h = h + self.position(offset)
        if self.charge_spin is not None:
            h = h + self.charge_spin(charge, spin).to(edge_vec.dtype)[batch]
        slot, keep, k, index, valid, bias = neighbor_table(source, target, r, env, n, self.slots_cap)
        pair = self.pair(torch.cat([to_slots(edge_vec, slot, keep, n, k),
                                    to_slots(self.basis(r), slot, keep, n, k)], dim=-1))
        # rotary: each token's position relative to the sequence's atom, x_j - x_i (0 at slot 0)
        positions: Optional[torch.Tensor] = to_slots(-edge_vec, slot, keep, n, k) if self.rotary else None
        for block in self.blocks:
            h = block(h, pair, index, bias, positions)
        return self.norm(h)

    @property
    def interaction_hops(self) -> int:
        # one per block, plus one where the "offset" input features gather the neighbours
        return len(self.blocks) + (1 if self.offset else 0)

    @property
    def last_layer(self) -> nn.Linear:
        return self.energy_head[-1]

    def atom_energies(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                      batch: torch.Tensor, num_graphs: int, charge: torch.Tensor, spin: torch.Tensor) -> torch.Tensor:
        z = self.embeddings(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        return self.energy_head(z).squeeze(-1)

    def atom_energies_and_forces(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                                 edge_vec: torch.Tensor, batch: torch.Tensor, num_graphs: int, charge: torch.Tensor,
                                 spin: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        z = self.embeddings(atomic_numbers, edge_index, edge_vec, batch, charge, spin)
        return self.energy_head(z).squeeze(-1), self.force_head(z)

    def alignment_scale(self, progress: Optional[float]) -> float:
        """The alignment weight's factor at ``progress`` (fraction of the planned training steps done):
        a linear rise over the first ``alignment_warmup`` of training, then a cosine from 1 to
        ``alignment_final``. 1 when the length of training is unknown (progress None)."""
        if progress is None:
            return 1.0
        p = min(max(float(progress), 0.0), 1.0)
        if p < self.alignment_warmup:
            return p / self.alignment_warmup
        span = (p - self.alignment_warmup) / (1.0 - self.alignment_warmup)
        return self.alignment_final + (1.0 - self.alignment_final) * 0.5 * (1.0 + math.cos(math.pi * span))

    @torch.jit.unused
    def auxiliary_loss(self, batch, progress: Optional[float] = None) -> Optional[torch.Tensor]:
        """The alignment loss on ``batch`` (with its graph), each structure turned by a random rotation;
        ``progress`` (fraction of training done, from the trainer) sets the weight's schedule."""
        if self.alignment_weight <= 0:
            return None
        from mlip.graph import edge_vectors, rotate
        from mlip.nn.so3 import random_rotation

        graph, b, charge, spin = structure_fields(batch)
        dtype = self.dtype
        rotations = random_rotation(b, dtype=dtype).to(batch.pos.device)
        latents = []
        for data in (batch, rotate(batch, rotations)):
            vec = edge_vectors(data.pos.to(dtype), data.cell.reshape(-1, 3, 3).to(dtype), data.edge_index,
                               data.cell_shifts, graph)
            latents.append(self.embeddings(data.atomic_numbers, data.edge_index, vec, graph, charge, spin))
        z, z_rotated = latents
        rotation_features = rotations.reshape(b, 9)
        if self.alignment == "structure":
            # the paper's: mean-pooled structure embeddings, each structure against the batch's others
            counts = scatter_sum(torch.ones_like(z[:, 0]), graph, b).clamp(min=1.0).unsqueeze(-1)
            z, z_rotated = scatter_sum(z, graph, b) / counts, scatter_sum(z_rotated, graph, b) / counts
        else:
            rotation_features = rotation_features[graph]
        predicted = z + self.transform(torch.cat([z, rotation_features], dim=-1))
        # InfoNCE: item i of the rotated batch (an atom, or a structure) against every item (at most
        # max_alignment_atoms of them, drawn at random, so the logits stay small)
        n = z.shape[0]
        if n > self.max_alignment_atoms:
            keep = torch.randperm(n, device=z.device)[: self.max_alignment_atoms]
            predicted, z_rotated = predicted[keep], z_rotated[keep]
        anchor = nn.functional.normalize(predicted, dim=-1)
        target = nn.functional.normalize(z_rotated, dim=-1)
        logits = anchor @ target.T / self.alignment_temperature
        labels = torch.arange(logits.shape[0], device=logits.device)
        weight = self.alignment_weight * self.alignment_scale(progress)
        return weight * nn.functional.cross_entropy(logits, labels)

"""The exported model's MD-engine entry point (ScriptablePotential.lammps) under a domain
decomposition done here in Python as LAMMPS does it: each "rank" owns a slab of the cell and sees
ghost atoms (periodic images and the other slabs' atoms) out to interaction_hops x cutoff, with a
full neighbour list over owned and ghost atoms. Summed over ranks, with ghost forces and virials
added to their owners, it must give the periodic model's energy, forces, stress and per-atom
energies, for every registered potential."""

import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from mlip.data import AtomicData
from mlip.export import ScriptablePotential
from mlip.models import registered
from tests.models.structures import STRUCTURES, make


SKIN = 1.0  # Å


def rank_share(atoms, owned: np.ndarray, reach: float, cutoff: float):
    """(positions, numbers, originals, edge_index) of one rank: owned atoms first, then every
    periodic image within ``reach`` of an owned atom that is not an owned atom itself."""
    i, j, shift = neighbor_list("ijS", atoms, reach)
    from_owned = np.isin(i, owned)
    images = {(int(a), tuple(s)) for a, s in zip(j[from_owned], shift[from_owned])}
    images -= {(int(a), (0, 0, 0)) for a in owned}
    ghosts = sorted(images)
    cell = np.asarray(atoms.cell)
    originals = np.concatenate([owned, [a for a, _ in ghosts]]).astype(int)
    pos = np.concatenate([atoms.positions[owned],
                          np.array([atoms.positions[a] + np.array(s) @ cell for a, s in ghosts]).reshape(-1, 3)])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    source, target = np.nonzero((d < cutoff) & (d > 0))
    return pos, atoms.numbers[originals], originals, np.stack([source, target])


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("name", registered())
def test_ranks_add_up_to_the_periodic_model(name, ranks):
    model = make(name).eval()
    scripted = torch.jit.script(ScriptablePotential(model))
    atoms = STRUCTURES["triclinic"]().repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    reference = model(AtomicData.from_ase(atoms))
    n = len(atoms)
    slab = np.floor(atoms.get_scaled_positions()[:, 0] * ranks).astype(int) % ranks
    energy, forces, virial, atom_energy = 0.0, np.zeros((n, 3)), np.zeros(6), np.zeros(n)
    atom_virial = np.zeros((n, 6))
    for rank in range(ranks):
        owned = np.nonzero(slab == rank)[0]
        # ghosts out to hops x cutoff plus a neighbour-list skin, as LAMMPS sends them: atoms the
        # owned atoms' energies do not depend on, which the model leaves out (owned_reach)
        pos, numbers, originals, edges = rank_share(atoms, owned, model.interaction_hops * model.cutoff + SKIN,
                                                    model.cutoff)
        out = scripted.lammps(torch.tensor(pos), torch.tensor(numbers), torch.tensor(edges), len(owned), True)
        energy += float(out["energy"])
        np.add.at(forces, originals, out["forces"].detach().numpy())
        np.add.at(atom_virial, originals, out["atom_virials"].numpy())
        atom_energy[owned] = out["atom_energies"].numpy()
        virial += out["virial"].numpy()
    assert energy == pytest.approx(float(reference["energy"][0].detach()), rel=1e-10)
    assert atom_energy.sum() == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(forces, reference["forces"].detach().numpy(), rtol=1e-8, atol=1e-10)
    stress = reference["stress"][0].detach().numpy()
    expected = -atoms.get_volume() * stress[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
    np.testing.assert_allclose(virial, expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(atom_virial.sum(0), expected, rtol=1e-8, atol=1e-10)


def test_a_ghost_shell_one_hop_short_changes_the_energy():
    """The reach matters: with ghosts out to (interaction_hops - 1) x cutoff the ranks no longer add
    up (so the test above would catch an understated interaction_hops)."""
    model = make("facet").eval()
    scripted = torch.jit.script(ScriptablePotential(model))
    atoms = STRUCTURES["triclinic"]().repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    slab = np.floor(atoms.get_scaled_positions()[:, 0] * 2).astype(int) % 2
    total = 0.0
    for rank in range(2):
        owned = np.nonzero(slab == rank)[0]
        pos, numbers, _, edges = rank_share(atoms, owned, (model.interaction_hops - 1) * model.cutoff + 0.01,
                                            model.cutoff)
        total += float(scripted.lammps(torch.tensor(pos), torch.tensor(numbers), torch.tensor(edges), len(owned))["energy"])
    assert abs(total - float(model(AtomicData.from_ase(atoms))["energy"][0].detach())) > 1e-6


def test_only_what_the_owned_energies_depend_on_is_computed():
    """A chain 0 - 1 - 2 - ... owned atom 0: with h interaction hops the atoms within h hops are
    kept (owned first), and only the edges into atoms within h - 1 hops."""
    potential = ScriptablePotential(make("facet").eval())
    hops = potential.interaction_hops
    n = hops + 3
    links = torch.arange(n - 1)
    edge_index = torch.cat([torch.stack([links, links + 1]), torch.stack([links + 1, links])], dim=1)
    for scripted in (potential, torch.jit.script(potential)):
        atoms, edges = scripted.owned_reach(edge_index, n, 1)
        assert atoms.tolist() == list(range(hops + 1))
        kept = {(int(atoms[s]), int(atoms[t])) for s, t in edges.t()}
        expected = {(int(s), int(t)) for s, t in edge_index.t() if int(t) <= hops - 1}
        assert kept == expected

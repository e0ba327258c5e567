"""The physics suite every potential inherits, shipped with the package so that a model defined
anywhere (a user's plugin) runs it as mlip's own do:

    import pytest
    from mlip.testing import PotentialTests, randomized

    class TestMyPotential(PotentialTests):
        @pytest.fixture
        def model(self):
            return randomized(MyPotential(cutoff=4.0, ...))   # float64, eval mode

Checks: rotation equivariance (1e-8 for ``model.exactly_equivariant`` models, measured otherwise),
a molecule in a vacuum box (pbc False) behaving as the bare molecule, translation and permutation invariance, wrapped against unwrapped positions in periodic cells,
forces = minus the finite-difference gradient, stress = the strain derivative, extensivity,
smoothness as a neighbour crosses the cutoff, locality (interaction_hops), isolated atoms giving their reference energies,
far-apart molecules adding up, dimers repulsive at short range (with the ZBL prior),
batch = one by one, float32 against float64, the ASE calculator giving what the model gives, and
force training reaching every weight.

Where a model departs from a check by design, the check reports the measured departure (pytest's
record_property, in the JUnit XML) and asserts that it is the departure expected: direct-force
heads are not the gradient of the energy; frame averaging (mlip.nn.frames) is not local (an atom
beyond the cutoff, or beyond interaction_hops, moves the frame, and far-apart molecules do not add
up), though the energy stays continuous as an atom crosses the cutoff.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mlip.calculator import MLIPCalculator
from mlip.data import AtomicData
from mlip.graph import build_graph, collate, rotate
from mlip.nn.so3 import random_rotation
from mlip.testing.equivariance import equivariance_errors
from mlip.testing.structures import STRUCTURES, data, ethanol, water


def energy(model, d) -> float:
    return float(model(d, compute_forces=False, compute_stress=False)["energy"].detach())


def derivative(f, h):
    """df/dx at 0 by the fourth-order central stencil (O(h^4) for smooth f; the cubic splines are C2,
    so where a stencil straddles a knot the error is O(h^2): hence the small steps of fd_agrees)."""
    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


def fd_agrees(f, value: float, rel: float, abs_tol: float, steps=(1e-3, 3e-4, 1e-4)) -> bool:
    """Does -/+ df/dx at 0 agree with ``value`` at one of ``steps``? The stencil's error is
    truncation (large h, and O(h^2) where it straddles a spline knot) plus the round-off of total
    energies of ~1e3 eV (small h); the derivative is confirmed when some step brings both down."""
    return any(abs(derivative(f, h) - value) <= abs_tol + rel * abs(value) for h in steps)


def frame_averaged(model) -> bool:
    """Does the model average over frames of whole structures (mlip.nn.frames)? Such a model is exactly
    equivariant but not local: the checks of locality report its measured departures instead."""
    return int(getattr(model, "num_frames", 0)) > 0


def _close(out, ref, rtol=1e-8, energy_rtol=1e-10):
    torch.testing.assert_close(out["energy"], ref["energy"], rtol=energy_rtol, atol=1e-10)
    torch.testing.assert_close(out["forces"], ref["forces"], rtol=rtol, atol=1e-10)
    if "stress" in ref:
        torch.testing.assert_close(out["stress"], ref["stress"], rtol=rtol, atol=1e-12)


class PotentialTests:
    """Subclass with a ``model`` fixture returning a float64 Potential in eval mode."""

    @pytest.fixture
    def model(self):
        raise NotImplementedError("a PotentialTests subclass provides the `model` fixture")

    @pytest.mark.parametrize("structure", list(STRUCTURES))
    def test_rotation_equivariance(self, model, structure, record_property):
        d = build_graph(data(structure), model.cutoff)
        errors = equivariance_errors(model, d, rotations=3)
        record_property("equivariance_errors", errors)
        if model.exactly_equivariant:
            assert max(errors.values()) < 1e-8, errors
        else:  # learns the symmetry: measured, not built in
            assert all(np.isfinite(v) for v in errors.values()) and max(errors.values()) > 0, errors

    @pytest.mark.parametrize("structure", list(STRUCTURES))
    def test_translation_and_permutation_invariance(self, model, structure):
        d = data(structure)
        ref = model(d)
        shifted = d.clone()
        shifted.pos = d.pos + torch.tensor([0.37, -1.21, 2.05], dtype=d.pos.dtype)
        _close(model(shifted), {k: v for k, v in ref.items() if k != "stress"})
        perm = torch.randperm(d.num_nodes, generator=torch.Generator().manual_seed(1))
        permuted = AtomicData.build(pos=d.pos[perm], atomic_numbers=d.atomic_numbers[perm], cell=d.cell, pbc=d.pbc)
        _close(model(permuted), {"energy": ref["energy"], "forces": ref["forces"][perm], "stress": ref["stress"]})

    @pytest.mark.parametrize("structure", ["si2", "triclinic", "slab"])
    def test_wrapped_and_unwrapped_positions_agree(self, model, structure):
        """Atoms moved by whole lattice vectors along the periodic directions (out of the cell and
        back in) are the same crystal: the same energy, forces and stress."""
        d = data(structure)
        ref = model(d)
        moved = d.clone()
        pbc = d.pbc.reshape(3)
        rng = np.random.default_rng(7)
        images = torch.tensor(rng.integers(-2, 3, size=(d.num_nodes, 3)), dtype=d.pos.dtype) * pbc.to(d.pos.dtype)
        moved.pos = d.pos + images @ d.cell.reshape(3, 3)
        assert bool((moved.pos != d.pos).any())
        _close(model(moved), ref)

    @pytest.mark.parametrize("structure", ["ethanol", "triclinic", "slab"])
    def test_forces_are_minus_the_gradient(self, model, structure, record_property):
        d = data(structure)
        forces = model(d)["forces"]

        def displaced(atom, k):
            def f(x):
                moved = d.clone()
                moved.pos = d.pos.clone()
                moved.pos[atom, k] += x
                return energy(model, moved)
            return f

        checked = [(atom, k) for atom in (0, d.num_nodes // 2, d.num_nodes - 1) for k in range(3)]
        if model.direct_forces:
            # a direct head is not the gradient (reported, not required): the worst relative gap
            gaps = [abs(derivative(displaced(atom, k), 1e-4) + float(forces[atom, k])) for atom, k in checked]
            gap = max(gaps) / max(float(forces.abs().max()), 1e-30)
            record_property("direct_forces_vs_gradient", gap)
            assert np.isfinite(gap) and gap > 1e-6, f"direct forces agree with the gradient ({gap:.1e}): not direct?"
            return
        for atom, k in checked:
            assert fd_agrees(displaced(atom, k), -float(forces[atom, k]), 1e-7, 1e-8), (atom, k)

    @pytest.mark.parametrize("structure", ["si2", "triclinic", "slab"])
    def test_stress_is_the_strain_derivative(self, model, structure):
        """σ_ij = (1/V) dE/dε_ij along the periodic directions; the slab (vacuum along z, pbc F there)
        has zero stress in the components that involve z."""
        d = data(structure)
        stress = model(d)["stress"][0]
        volume = float(torch.linalg.det(d.cell[0]).abs())
        periodic = d.pbc.reshape(3).tolist()

        def strained(i, j):
            def f(x):
                eps = torch.zeros(3, 3, dtype=torch.float64)
                eps[i, j] += x / 2
                eps[j, i] += x / 2  # a symmetric strain; diagonal: eps_ii = x
                out = d.clone()
                out.pos = d.pos @ (torch.eye(3, dtype=torch.float64) + eps)
                out.cell = d.cell @ (torch.eye(3, dtype=torch.float64) + eps)
                return energy(model, out)
            return f

        for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
            if periodic[i] and periodic[j]:
                assert fd_agrees(strained(i, j), float(stress[i, j]) * volume, 1e-7, 1e-9 * volume), (i, j)
            else:
                assert float(stress[i, j]) == 0.0 and float(stress[j, i]) == 0.0, (i, j, stress)

    def test_a_molecule_in_a_vacuum_box_is_a_molecule(self, model, record_property):
        """A molecule with a cell and pbc False: the energy and forces of the same molecule without a
        cell, zero stress, and the box plays no part: turning the molecule inside the fixed box gives
        what turning molecule and box together gives (the energy invariant and the forces equivariant
        where the model is exactly equivariant; measured otherwise)."""
        bare, boxed = data("ethanol"), data("boxed_ethanol")
        ref, out = model(bare), model(boxed)
        _close(out, {"energy": ref["energy"], "forces": ref["forces"]})
        assert float(out["stress"].abs().max()) == 0.0, out["stress"]
        centre = boxed.pos.mean(0)
        generator = torch.Generator().manual_seed(5)
        worst = 0.0
        for _ in range(3):
            r = random_rotation(dtype=boxed.pos.dtype, generator=generator)
            turned = boxed.clone()
            turned.pos = (boxed.pos - centre) @ r.T + centre  # the box stays
            both = rotate(boxed, r)  # molecule and box turned about the origin
            one, other = model(turned), model(both)
            _close(one, {"energy": other["energy"], "forces": other["forces"]})
            worst = max(worst, abs(float((one["energy"] - out["energy"]).detach())),
                        float((one["forces"] - out["forces"] @ r.T).abs().max()))
        record_property("boxed_molecule_rotation_error", worst)
        if model.exactly_equivariant:
            assert worst < 1e-8 * max(1.0, float(out["forces"].detach().abs().max()), abs(float(out["energy"].detach()))), worst

    @pytest.mark.parametrize("structure, repeat", [("si2", (2, 2, 1)), ("triclinic", (1, 2, 1)), ("slab", (2, 1, 1))])
    def test_supercell_energy_is_extensive(self, model, structure, repeat):
        atoms = STRUCTURES[structure]()
        e_cell = energy(model, AtomicData.from_ase(atoms))
        e_super = energy(model, AtomicData.from_ase(atoms.repeat(repeat)))
        assert e_super == pytest.approx(np.prod(repeat) * e_cell, rel=1e-10)

    def test_smooth_as_a_neighbour_crosses_the_cutoff(self, model, record_property):
        rc = model.cutoff

        def dimer_plus(distance):
            pos = [[0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, distance, 0.0]]
            return AtomicData.build(pos=pos, atomic_numbers=[6, 8, 1])

        def jumps(delta):
            inside, outside = model(dimer_plus(rc - delta)), model(dimer_plus(rc + delta))
            return (abs(float((inside["energy"] - outside["energy"]).detach())),
                    float((inside["forces"] - outside["forces"]).abs().max()))

        energy_jump, force_jump = jumps(1e-5)
        if frame_averaged(model):
            # the frame moves with the third atom beyond the cutoff too: E changes at a finite rate across
            # the cutoff (reported) but does not jump: the change shrinks with the step
            record_property("frame_energy_slope_beyond_cutoff", energy_jump / 2e-5)
            small_energy, small_force = jumps(1e-6)
            assert small_energy < 0.2 * energy_jump + 1e-10 and small_force < 0.2 * force_jump + 1e-8, \
                (energy_jump, small_energy, force_jump, small_force)
        else:
            assert energy_jump < 1e-8 and force_jump < 1e-6, (energy_jump, force_jump)
        # the energy must actually depend on the third atom inside the cutoff
        assert abs(energy(model, dimer_plus(rc - 0.5)) - energy(model, dimer_plus(rc + 0.5))) > 1e-6

    def test_an_atom_feels_exactly_interaction_hops_neighbours_away(self, model, record_property):
        """In a chain whose neighbours are 0.6 cutoff apart (so that atom k is k edges from atom 0),
        atom 0's energy changes when atom ``interaction_hops`` moves and not when atom
        ``interaction_hops + 1`` does: the locality an MD engine's domain decomposition relies on
        (ghost atoms out to interaction_hops x cutoff)."""
        hops = int(model.interaction_hops)
        rc = model.cutoff
        numbers = [(6, 8, 1)[k % 3] for k in range(hops + 3)]

        def atom0(moved: int) -> float:
            pos = [[0.6 * rc * k, 0.5 if k == moved else 0.0, 0.0] for k in range(len(numbers))]
            g = collate([build_graph(AtomicData.build(pos=pos, atomic_numbers=numbers), rc, model.max_neighbors)])
            vec = g.pos[g.edge_index[1]] - g.pos[g.edge_index[0]]
            e, _ = model.structure_atom_energies(g.pos, g.cell.reshape(-1, 3, 3), g.pbc.reshape(-1, 3), g.atomic_numbers,
                                                 g.edge_index, vec, g.batch, 1, g.charge, g.spin)
            return float(e[0].detach())

        still = atom0(-1)
        assert abs(atom0(hops) - still) > 1e-12, f"atom 0 does not feel atom {hops}: interaction_hops overstated"
        beyond = abs(atom0(hops + 1) - still)
        if frame_averaged(model):
            # the frame depends on every atom, so an atom's energy may feel any other (reported: a model
            # whose energy is invariant without the frames, EScAIP with direct forces, does not)
            record_property("frame_energy_change_beyond_hops", beyond)
            assert np.isfinite(beyond)
        else:
            assert beyond < 1e-14, f"atom 0 feels atom {hops + 1}: interaction_hops understated"

    def test_isolated_atoms_give_their_reference_energies(self, model):
        """An atom without neighbours is a valid input (no edges at all) and has exactly its element's
        reference energy plus the per-atom shift, in eval mode and in training mode; atoms farther
        apart than the cutoff add up to the sum of those, with no forces."""
        far = model.cutoff + 5.0
        species = [z for z in (1, 6, 8) if bool(model.known_species[z])]
        reference = {z: float(model.reference_energies[z] + model.shift) for z in species}
        assert len(set(reference.values())) > 1, "set distinct reference energies to make this check mean something"
        for training in (False, True):
            model.train(training)
            try:
                for z in species:
                    lone = model(AtomicData.build(pos=[[0.0, 0.0, 0.0]], atomic_numbers=[z]))
                    assert float(lone["energy"].detach()) == pytest.approx(reference[z], rel=1e-12, abs=1e-9), z
                    assert float(lone["forces"].detach().abs().max()) == 0.0
            finally:
                model.eval()
        numbers = [species[i % len(species)] for i in range(4)]
        spread = AtomicData.build(pos=[[0.0, 0.0, 0.0], [far, 0.0, 0.0], [0.0, far, 0.0], [far, far, 0.3]],
                                  atomic_numbers=numbers)
        out = model(spread)
        assert float(out["energy"].detach()) == pytest.approx(sum(reference[z] for z in numbers), rel=1e-12)
        assert float(out["forces"].abs().max()) == 0.0
        # a lone atom's reference is the model's, not a readout's accident: changing the weights
        # changes a molecule's energy but not a lone atom's
        assert energy(model, data("ethanol")) != pytest.approx(sum(float(model.reference_energies[z] + model.shift)
                                                                  for z in data("ethanol").atomic_numbers.tolist()))

    # dimers of the repulsion check: every pair of H, C, N, O, and copper
    dimer_pairs = [(a, b) for i, a in enumerate((1, 6, 7, 8)) for b in (1, 6, 7, 8)[i:]] + [(29, 29)]
    # the check runs from this fraction of the pair's covalent distance down to 0.3 Å (see the test)
    dimer_start = 0.6

    def test_dimers_are_repulsive_at_short_range(self, model):
        """With the ZBL prior (``model.repulsion``), the energy of every dimer rises monotonically as
        its distance falls from ``dimer_start`` times the covalent distance to 0.3 Å, whatever the
        (random, physically scaled) weights. Nearer the covalent distance the prior fades out (it
        ends at 0.75x, before real bonds: triple bonds lie at 0.77-0.80x) and the learned energy
        decides. Without the prior, dimer energies are finite down to 0.3 Å."""
        from ase.data import covalent_radii

        for a, b in self.dimer_pairs:
            start = self.dimer_start * (covalent_radii[a] + covalent_radii[b])
            distances = np.linspace(0.3, start, 40)
            energies = np.array([energy(model, AtomicData.build(pos=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]],
                                                                atomic_numbers=[a, b])) for r in distances])
            assert np.isfinite(energies).all(), (a, b)
            if model.repulsion is not None:
                rising = np.diff(energies) < 0  # energy falls as the distance grows
                assert rising.all(), f"dimer {a}-{b}: energy not monotonic at {distances[1:][~rising].round(3)} Å"

    def test_below_its_window_a_pair_rises_with_the_prior_alone(self, model):
        """With the prior placed by training data (``set_statistics(pair_min_distance=...)``, here
        ethanol's own shortest distances per element pair), a dimer below its pair's window has the
        ZBL energy plus a constant (the learned part no longer sees the distance), so it rises
        monotonically whatever the weights; and ethanol itself, every pair at or beyond its r_min,
        has exactly the energy and forces it had without the windows (the training data's accuracy
        unchanged). Without the prior there are no windows: the energy is what it was."""
        from mlip.data.statistics import compute_statistics
        from mlip.nn.repulsion import zbl_energy

        placed = copy.deepcopy(model)
        before = placed(data("ethanol"))
        pairs = compute_statistics([data("ethanol")], cutoff=model.cutoff)["pair_min_distance"]
        placed.set_pair_min_distance(pairs)
        _close(placed(data("ethanol")), before, rtol=1e-12, energy_rtol=1e-14)
        for a, b, r_min in pairs if placed.repulsion is not None else []:
            r_in = float(placed.repulsion.window(torch.tensor(a), torch.tensor(b), torch.float64)[0])
            distances = np.linspace(0.3, r_in, 12)
            energies = np.array([energy(placed, AtomicData.build(pos=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]],
                                                                 atomic_numbers=[a, b])) for r in distances])
            zbl = zbl_energy(torch.tensor(a), torch.tensor(b), torch.tensor(distances)).numpy()
            learned = energies - zbl
            assert np.ptp(learned) < 1e-8 * max(1.0, np.abs(energies).max()), (a, b, learned)
            assert (np.diff(energies) < 0).all(), (a, b)

    def test_molecules_far_apart_give_the_sum_of_their_energies(self, model, record_property):
        a, b = ethanol(), water()
        b.positions += [model.cutoff + 10.0, 0.0, 0.0]
        both = a + b
        out = model(AtomicData.from_ase(both))
        parts = [model(AtomicData.from_ase(x)) for x in (a, b)]
        if frame_averaged(model):  # the pair's frames are not the molecules' own (reported)
            gap = abs(float((out["energy"] - parts[0]["energy"] - parts[1]["energy"]).detach()))
            force_gap = float((out["forces"] - torch.cat([p["forces"] for p in parts])).abs().max())
            record_property("frame_gaps_of_far_molecules", {"energy": gap, "forces": force_gap})
            assert np.isfinite(gap) and np.isfinite(force_gap) and max(gap, force_gap) > 0.0
            return
        torch.testing.assert_close(out["energy"], parts[0]["energy"] + parts[1]["energy"], rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(out["forces"], torch.cat([p["forces"] for p in parts]), rtol=1e-8, atol=1e-10)

    def test_batch_equals_one_by_one(self, model):
        structures = [data(name) for name in STRUCTURES]
        batch = collate(structures, cutoff=model.cutoff, max_neighbors=model.max_neighbors)
        out = model(batch)
        singles = [model(d) for d in structures]
        _close(out, {k: torch.cat([s[k] for s in singles]) for k in ("energy", "forces", "stress")})

    def test_float32_agrees_with_float64(self, model):
        model32 = copy.deepcopy(model).float()
        for name in STRUCTURES:
            out64 = model(data(name))
            out32 = model32(data(name, torch.float32))
            assert out32["energy"].dtype == torch.float32
            torch.testing.assert_close(out32["energy"].double(), out64["energy"], rtol=1e-6, atol=1e-4)
            scale = float(out64["forces"].abs().max())
            torch.testing.assert_close(out32["forces"].double(), out64["forces"], rtol=0, atol=1e-4 * max(scale, 1))

    def test_calculator_gives_what_the_model_gives(self, model):
        for name in ("ethanol", "triclinic"):
            atoms = STRUCTURES[name]()
            atoms.calc = MLIPCalculator(model)
            out = model(AtomicData.from_ase(atoms))
            assert atoms.get_potential_energy() == pytest.approx(float(out["energy"].detach()), rel=1e-12)
            np.testing.assert_allclose(atoms.get_forces(), out["forces"].detach().numpy(), rtol=1e-10, atol=1e-12)
            s = out["stress"][0].detach().numpy()
            np.testing.assert_allclose(atoms.get_stress(), [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]],
                                       rtol=1e-10, atol=1e-14)

    def test_forces_are_trainable(self, model):
        """The gradient of a gradient reaches the weights, and every weight takes part in the loss
        (Lightning's DDP, without find_unused_parameters, fails on a weight that does not)."""
        model = copy.deepcopy(model).train()
        batch = collate([data("ethanol"), data("si2")], cutoff=model.cutoff, max_neighbors=model.max_neighbors)
        out = model(batch)
        loss = out["energy"].square().sum() + out["forces"].square().sum() + out["stress"].square().sum()
        auxiliary = model.auxiliary_loss(batch)  # a training-only term (TransIP), which the trainer adds too
        loss = loss if auxiliary is None else loss + auxiliary
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        unused = [n for n, g in grads.items() if g is None]
        assert not unused, f"weights outside the loss's graph: {unused}"
        zero = [n for n, g in grads.items() if not bool(g.abs().sum() > 0)]
        assert len(zero) < len(grads) / 4, zero

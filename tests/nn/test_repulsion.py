"""The ZBL repulsion prior (mlip.nn.repulsion)."""

import numpy as np
import pytest
import torch
from ase.data import covalent_radii

from mlip.graph import build_graph
from mlip.graph.edges import edge_vectors
from mlip.nn.repulsion import COULOMB, ZBLRepulsion, smooth_step_off, zbl_energy
from mlip.testing.structures import data


def test_zbl_tends_to_bare_coulomb_and_is_screened_beyond():
    z = torch.tensor([6, 8, 29])
    r = torch.full((3,), 1e-5, dtype=torch.float64)
    coulomb = COULOMB * z.double() * z.double() / r
    torch.testing.assert_close(zbl_energy(z, z, r) / coulomb, torch.ones(3, dtype=torch.float64), rtol=1e-3, atol=0)
    far = torch.full((3,), 2.0, dtype=torch.float64)
    assert bool((zbl_energy(z, z, far) < 0.05 * COULOMB * z.double() ** 2 / far).all())


def test_switch_is_c2_at_both_ends():
    """Value, first and second derivative agree on both sides of t = 0 and t = 1 (to O(eps))."""
    def derivatives(t: float):
        x = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        s = smooth_step_off(x)
        (d1,) = torch.autograd.grad(s, x, create_graph=True)
        (d2,) = torch.autograd.grad(d1, x) if d1.requires_grad else (torch.zeros(()),)
        return np.array([float(s.detach()), float(d1.detach()), float(d2)])

    eps = 1e-5
    for end in (0.0, 1.0):
        np.testing.assert_allclose(derivatives(end - eps), derivatives(end + eps), atol=1e-3)
    np.testing.assert_allclose(derivatives(0.5)[:1], [0.5])


def test_pair_energy_full_below_inner_and_zero_beyond_outer():
    rep = ZBLRepulsion(cutoff=5.0).double()
    z = torch.tensor(8)
    d = 2 * covalent_radii[8]
    inner = torch.tensor(0.9 * float(rep.inner) * d, dtype=torch.float64)
    outer = torch.tensor(1.01 * float(rep.outer) * d, dtype=torch.float64)
    assert float(rep.pair_energies(z, z, inner)) == pytest.approx(float(zbl_energy(z, z, inner)), rel=1e-14)
    assert float(rep.pair_energies(z, z, outer)) == 0.0


def test_forces_are_the_gradient_and_pairs_count_once():
    """A compressed periodic cell (every pair inside the switch): per-atom energies sum to the pair
    sum, and the forces are minus the finite-difference gradient."""
    rep = ZBLRepulsion(cutoff=4.0).double()
    d = data("triclinic")
    d.pos, d.cell = d.pos * 0.6, d.cell * 0.6
    d = build_graph(d, 4.0)
    batch = torch.zeros_like(d.atomic_numbers)

    def total(pos):
        vec = edge_vectors(pos, d.cell.reshape(1, 3, 3), d.edge_index, d.cell_shifts, batch)
        return rep(d.atomic_numbers, d.edge_index, vec).sum()

    pos = d.pos.double().clone().requires_grad_(True)
    e = total(pos)
    assert float(e) > 1.0  # the compressed cell is inside the prior's range
    vec = edge_vectors(pos, d.cell.reshape(1, 3, 3), d.edge_index, d.cell_shifts, batch)
    z = d.atomic_numbers
    pairs = rep.pair_energies(z[d.edge_index[0]], z[d.edge_index[1]], vec.norm(dim=-1)).sum() / 2
    assert float(e) == pytest.approx(float(pairs), rel=1e-12)
    (grad,) = torch.autograd.grad(e, pos)
    h = 1e-5
    for atom, axis in [(0, 0), (1, 2), (2, 1)]:
        step = torch.zeros_like(pos)
        step[atom, axis] = h
        fd = (float(total(pos.detach() + step)) - float(total(pos.detach() - step))) / (2 * h)
        assert fd == pytest.approx(float(grad[atom, axis]), rel=1e-6, abs=1e-8)


def test_bad_switch_is_refused():
    with pytest.raises(ValueError, match="inner < outer"):
        ZBLRepulsion(cutoff=5.0, inner=1.0, outer=0.5)


def test_windows_follow_the_training_data_and_fall_back_to_covalent_radii():
    rep = ZBLRepulsion(cutoff=5.0).double()
    rep.set_pair_min_distance([(1, 6, 1.0), (6, 6, 1.39)])
    z = torch.tensor
    r_in, r_out = rep.window(z([1, 6, 6, 8]), z([6, 1, 6, 8]), torch.float64)
    torch.testing.assert_close(r_in[:3], torch.tensor([0.75, 0.75, 0.75 * 1.39], dtype=torch.float64))
    torch.testing.assert_close(r_out[:3], torch.tensor([1.0, 1.0, 1.39], dtype=torch.float64))
    d = 2 * covalent_radii[8]  # O-O: not in the data, the covalent rule
    assert float(r_in[3]) == pytest.approx(min(0.4, 0.5 * 0.75) * d) and float(r_out[3]) == pytest.approx(0.75 * d)


def _lengths(rep, z_pair, r):
    z = torch.tensor(z_pair)
    vec = torch.stack([r, 0.5 * r, -0.25 * r], dim=-1) / np.sqrt(1.3125)  # length r, one direction
    edge_index = torch.stack([torch.zeros_like(r, dtype=torch.long), torch.ones_like(r, dtype=torch.long)])
    out = rep.learned_edge_vectors(z, edge_index, vec)
    return vec, out


def test_the_learned_part_sees_the_pair_freeze_inside_its_window():
    """Beyond r_out (the training data's r_min) the learned part gets the edge vector itself (bit for
    bit: the training data); below 0.95 r_out a vector of one fixed length in the same direction;
    between, a length f(r) with f' rising smoothly from 0 to 1 (C1 and more at both ends)."""
    rep = ZBLRepulsion(cutoff=5.0).double()
    rep.set_pair_min_distance([(1, 8, 0.9)])  # the freeze window [0.855, 0.9]
    r = torch.linspace(0.3, 1.5, 1201, dtype=torch.float64, requires_grad=True)
    vec, seen = _lengths(rep, [8, 1], r)
    length = seen.norm(dim=-1)
    beyond = r >= 0.9
    assert torch.equal(seen[beyond], vec[beyond])
    torch.testing.assert_close(seen / length[:, None], vec / r[:, None].detach())  # direction kept
    below = r <= 0.855
    torch.testing.assert_close(length[below], torch.full_like(length[below], (0.855 + 0.9) / 2))
    (slope,) = torch.autograd.grad(length.sum(), r)
    assert float(slope[below].abs().max()) < 1e-12 and torch.allclose(slope[beyond], torch.ones_like(slope[beyond]))
    inside = slope[~below & ~beyond]
    assert bool(((inside >= 0) & (inside <= 1)).all()) and bool((torch.diff(inside) >= 0).all())
    assert float(torch.diff(slope).abs().max()) < 0.06  # no jump: at most 1.875 x 0.001 Å / 0.045 Å a step
    rep.freeze_learned.fill_(False)
    assert torch.equal(_lengths(rep, [8, 1], r.detach())[1], vec.detach())

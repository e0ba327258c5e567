"""mlip.nn.frames: frames are rotations that turn with the structure, in generic and degenerate
structures (linear, planar-symmetric, tetrahedral, a lone atom), in cells (cubic, wrapped atoms,
supercells, slabs, wires), and averaging any function over them makes it exactly invariant."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from mlip.nn.frames import base_frames, structure_frames
from mlip.nn.so3 import random_rotation

MOLECULES = {  # (name, the degeneracy of its second moments)
    "CH3CH2OH": "generic", "CO2": "prolate (linear)", "C6H6": "oblate", "CH4": "spherical", "C2H6": "prolate",
    "NH3": "oblate", "H2O": "generic",
}


def frames_of(pos, cell=None, num_frames=4, pbc=None):
    """Frames of one structure: a molecule without ``cell``; with one, periodic along ``pbc`` (all
    three directions unless given)."""
    pos = torch.as_tensor(pos, dtype=torch.float64)
    periodic = cell is not None if pbc is None else pbc
    cell = torch.zeros(1, 3, 3, dtype=torch.float64) if cell is None else torch.as_tensor(
        cell, dtype=torch.float64).reshape(1, 3, 3)
    pbc = torch.as_tensor(periodic, dtype=torch.bool).expand(3).reshape(1, 3)
    return structure_frames(pos, cell, pbc, torch.zeros(len(pos), dtype=torch.long), 1, num_frames)[0]


def frame_coordinates(pos, cell=None, num_frames=4):
    """(F, N, 3) the centred positions in every frame."""
    pos = torch.as_tensor(pos, dtype=torch.float64)
    u = frames_of(pos, cell, num_frames)
    return torch.einsum("ni,fij->fnj", pos - pos.mean(0), u)


def same_set(a, b, atol=1e-9) -> bool:
    """Are the frame-coordinate sets a, b (F, N, 3) the same up to the order of the frames?"""
    return all(any(float((x - y).abs().max()) < atol for y in b) for x in a)


def invariant_average(pos, cell=None, num_frames=4):
    """A function that is not invariant (weights on each frame coordinate, cubed) averaged over frames."""
    x = frame_coordinates(pos, cell, num_frames)
    w = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)
    return ((x * w).sum(-1) ** 3 + x[..., 0] * x[..., 1]).sum(-1).mean()


@pytest.mark.parametrize("name", list(MOLECULES))
def test_frames_are_rotations_that_turn_with_the_molecule(name):
    pos = torch.tensor(molecule(name).positions)
    u = frames_of(pos)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(u.transpose(1, 2) @ u, eye.expand(4, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(u), torch.ones(4, dtype=torch.float64), atol=1e-12, rtol=0)
    for seed in range(3):
        r = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        moved = pos @ r.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        assert same_set(frame_coordinates(moved), frame_coordinates(pos)), (name, MOLECULES[name], seed)
        assert float(invariant_average(moved)) == pytest.approx(float(invariant_average(pos)), rel=1e-10, abs=1e-10)


def test_reflections_need_the_eight_frames():
    pos = torch.tensor(molecule("CH3CH2OH").positions)
    mirrored = pos * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.linalg.det(frames_of(pos, num_frames=8)).abs().min() == pytest.approx(1.0)
    assert same_set(frame_coordinates(mirrored, num_frames=8), frame_coordinates(pos, num_frames=8))
    assert not same_set(frame_coordinates(mirrored, num_frames=4), frame_coordinates(pos, num_frames=4))


@pytest.mark.parametrize("name", ["CO2", "CH4", "C6H6", "CH3CH2OH"])
def test_the_average_has_a_finite_gradient_that_is_equivariant(name):
    pos = torch.tensor(molecule(name).positions, requires_grad=True)
    (grad,) = torch.autograd.grad(invariant_average(pos), pos)
    assert bool(torch.isfinite(grad).all()), name
    r = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    turned = (pos.detach() @ r.T).requires_grad_(True)
    (grad_turned,) = torch.autograd.grad(invariant_average(turned), turned)
    torch.testing.assert_close(grad_turned, grad @ r.T, atol=1e-8, rtol=1e-8)


def test_gradient_matches_finite_differences_in_a_generic_molecule():
    pos = torch.tensor(molecule("CH3CH2OH").positions, requires_grad=True)
    (grad,) = torch.autograd.grad(invariant_average(pos), pos)
    h = 1e-6
    for atom, k in [(0, 0), (3, 1), (8, 2)]:
        plus, minus = pos.detach().clone(), pos.detach().clone()
        plus[atom, k] += h
        minus[atom, k] -= h
        fd = (float(invariant_average(plus)) - float(invariant_average(minus))) / (2 * h)
        assert fd == pytest.approx(float(grad[atom, k]), rel=1e-5, abs=1e-7)


def test_a_lone_atom_and_a_linear_molecule_are_exact():
    u = frames_of(torch.zeros(1, 3, dtype=torch.float64))
    assert bool(torch.isfinite(u).all())
    co2 = torch.tensor(molecule("CO2").positions)
    x = frame_coordinates(co2)
    assert float(x[..., 1:].abs().max()) < 1e-12  # every atom on the first axis, in every frame


def test_cells_take_their_frame_from_the_lattice():
    si = bulk("Si", "diamond", a=5.43, cubic=True)  # cubic: all second moments equal
    pos, cell = torch.tensor(si.positions), torch.tensor(np.asarray(si.cell))
    u = frames_of(pos, cell)
    torch.testing.assert_close(u[0], torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    r = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(frames_of(pos @ r.T, cell @ r.T), r @ u, atol=1e-12, rtol=0)
    wrapped = pos + torch.tensor([[1, 0, -1]] + [[0, 0, 0]] * (len(pos) - 1), dtype=torch.float64) @ cell
    torch.testing.assert_close(frames_of(wrapped, cell), u)
    big = si.repeat((2, 1, 3))
    torch.testing.assert_close(frames_of(torch.tensor(big.positions), torch.tensor(np.asarray(big.cell))), u)


def _base(pos, cell, pbc):
    return base_frames(pos, cell.reshape(1, 3, 3), torch.tensor([pbc]), torch.zeros(len(pos), dtype=torch.long), 1)[0]


def test_a_slab_and_a_wire_with_and_without_vacuum_vectors():
    """Only the periodic lattice vectors (pbc) make the frame: a slab's vacuum vector and a wire's
    two vacuum vectors play no part, whether zero or not."""
    pos = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    slab_cell = torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    u = _base(pos, slab_cell, [True, True, False])
    torch.testing.assert_close(u[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    tilted_vacuum = slab_cell.clone()
    tilted_vacuum[2] = torch.tensor([0.7, -0.4, 12.0], dtype=torch.float64)
    torch.testing.assert_close(_base(pos, tilted_vacuum, [True, True, False]), u, atol=1e-14, rtol=0)
    # periodic along a1 and a3, a2 the vacuum: e1 along a1, e2 in the (a1, a3) plane
    other = torch.tensor([[3.0, 0.0, 0.0], [0.3, 9.0, 0.2], [1.0, 0.0, 2.5]], dtype=torch.float64)
    v = _base(pos, other, [True, False, True])
    torch.testing.assert_close(v[:, 2].abs(), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-14, rtol=0)
    wire_cell = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 4.0]], dtype=torch.float64)
    u = _base(pos, wire_cell, [False, False, True])
    torch.testing.assert_close(u[:, 0], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    moved = pos.clone()
    moved[2, 2] += 4.0  # wrapped along the wire: the same frame
    torch.testing.assert_close(_base(moved, wire_cell, [False, False, True]), u)
    boxed_wire = wire_cell + torch.diag(torch.tensor([15.0, 15.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(_base(pos, boxed_wire, [False, False, True]), u, atol=1e-14, rtol=0)


def test_a_molecule_in_a_vacuum_box_gets_its_own_frames():
    """pbc False with a box: the molecule's principal axes, which turn with the molecule inside a
    box that does not turn."""
    pos = torch.tensor(molecule("CH3CH2OH").positions) + 6.0
    box = 12.0 * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(frames_of(pos, box, pbc=False), frames_of(pos))
    r = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    centre = pos.mean(0)
    assert same_set(frame_coordinates((pos - centre) @ r.T + centre, box), frame_coordinates(pos, box)) is False
    turned = frames_of((pos - centre) @ r.T + centre, box, pbc=False)
    assert same_set(torch.einsum("ni,fij->fnj", (pos - centre) @ r.T, turned),
                    torch.einsum("ni,fij->fnj", pos - centre, frames_of(pos, box, pbc=False)))


def test_a_batch_gets_each_structure_its_own_frames():
    a, b = torch.tensor(molecule("CH3CH2OH").positions), torch.tensor(molecule("C6H6").positions) + 20.0
    pos = torch.cat([a, b])
    batch = torch.cat([torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)])
    both = structure_frames(pos, torch.zeros(2, 3, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.bool),
                            batch, 2, 4)
    torch.testing.assert_close(both[0], frames_of(a))
    torch.testing.assert_close(both[1], frames_of(b))

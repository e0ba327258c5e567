"""The conservation step's pieces: prescribed linear and angular momentum, exactly, with the least change."""

import torch

from mlip.nn.momentum import (angular_momentum, centre_of_mass, linear_momentum, set_angular_momentum,
                              set_centre_of_mass_shift, set_linear_momentum)


def batch_of_two():
    torch.manual_seed(0)
    masses = torch.rand(7, dtype=torch.float64) * 15 + 1
    pos = torch.randn(7, 3, dtype=torch.float64) * 2
    vel = torch.randn(7, 3, dtype=torch.float64) * 0.01
    return masses, pos, vel, torch.tensor([0, 0, 0, 1, 1, 1, 1])


def test_linear_momentum_is_set_exactly_per_structure():
    masses, _, vel, batch = batch_of_two()
    goal = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]], dtype=torch.float64)
    out = set_linear_momentum(masses, vel, goal, batch, 2)
    assert torch.allclose(linear_momentum(masses, out, batch, 2), goal, atol=1e-15)
    # the change is one vector per structure
    change = out - vel
    assert torch.allclose(change[:3], change[:1].expand(3, 3)) and torch.allclose(change[3:], change[3:4].expand(4, 3))


def test_centre_of_mass_moves_by_the_shift():
    masses, pos, vel, batch = batch_of_two()
    shift = torch.tensor([[0.3, 0.0, -0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    out = set_centre_of_mass_shift(masses, vel * 10, shift, batch, 2)
    moved = centre_of_mass(masses, pos + out, batch, 2) - centre_of_mass(masses, pos, batch, 2)
    assert torch.allclose(moved, shift, atol=1e-14)


def test_angular_momentum_is_set_without_touching_the_linear_one():
    masses, pos, vel, batch = batch_of_two()
    goal = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.1, 0.2]], dtype=torch.float64)
    out = set_angular_momentum(masses, pos, vel, goal, batch, 2)
    assert torch.allclose(angular_momentum(masses, pos, out, batch, 2), goal, atol=1e-13)
    assert torch.allclose(linear_momentum(masses, out, batch, 2), linear_momentum(masses, vel, batch, 2), atol=1e-15)
    assert not torch.allclose(out, vel)


def test_a_linear_molecule_gets_no_spin_about_its_axis():
    masses = torch.tensor([12.0, 16.0, 16.0], dtype=torch.float64)
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.16], [0.0, 0.0, -1.16]], dtype=torch.float64)
    vel = torch.zeros(3, 3, dtype=torch.float64)
    batch = torch.zeros(3, dtype=torch.long)
    out = set_angular_momentum(masses, pos, vel, torch.tensor([[0.2, 0.0, 0.5]], dtype=torch.float64), batch, 1)
    spin = angular_momentum(masses, pos, out, batch, 1)
    assert torch.allclose(spin, torch.tensor([[0.2, 0.0, 0.0]], dtype=torch.float64), atol=1e-12)
    assert torch.isfinite(out).all()

"""Frame averaging in the Potential base (``frame_averaging``; the frames: tests/nn/test_frames.py):
evaluation is the mean of the architecture over the structure's frames, training takes one random
frame, and where two principal moments cross the averaged energy jumps. The
physics suite runs on frame-averaged TransIP and EScAIP (tests/models/test_physics.py)."""

import contextlib
import copy

import numpy as np
import pytest
import torch

from mlip.data import AtomicData
from mlip.graph import rotate
from mlip.nn.frames import structure_frames
from mlip.nn.so3 import random_rotation
from tests.models.structures import data, make


def test_evaluation_is_the_mean_over_the_frames():
    model = make("transip", frame_averaging="so3")
    plain = copy.deepcopy(model)
    plain.num_frames = 0  # the same weights without the average
    d = data("ethanol")
    frames = structure_frames(d.pos, d.cell.reshape(-1, 3, 3), d.pbc.reshape(-1, 3),
                              torch.zeros(d.num_nodes, dtype=torch.long), 1, 4)[0]
    energies, forces = [], []
    for u in frames:
        turned = d.clone()
        turned.pos = d.pos @ u  # the structure in frame coordinates
        out = plain(turned)
        energies.append(float(out["energy"].detach()))
        forces.append(out["forces"].detach() @ u.T)  # back to lab axes (frames held fixed)
    out = model(d)
    assert float(out["energy"].detach()) == pytest.approx(np.mean(energies), rel=1e-12)
    assert len(set(np.round(energies, 10))) > 1  # the architecture alone is not invariant
    # the averaged model's forces include the frames' own dependence on the positions: not the
    # frames-held-fixed average, but close to it
    held = torch.stack(forces).mean(0)
    assert float((out["forces"] - held).abs().max()) > 0.0


def test_training_takes_one_random_frame_per_structure():
    model = make("transip", frame_averaging="so3").train()
    d = data("ethanol")
    energies = set()
    for seed in range(8):
        torch.manual_seed(seed)
        energies.add(round(float(model(d)["energy"].detach()), 10))
    assert 1 < len(energies) <= 4, energies
    model.eval()
    e1, e2 = float(model(d)["energy"].detach()), float(model(d)["energy"].detach())
    assert e1 == e2


def test_only_models_that_need_it_take_it():
    assert make("transip", frame_averaging="o3").exactly_equivariant
    assert not make("transip").exactly_equivariant
    with pytest.raises(ValueError, match="exactly equivariant already"):
        make("escaip", frame_averaging="so3")
    with pytest.raises(ValueError, match="frame_averaging must be"):
        make("transip", frame_averaging="c2")


def test_energy_jumps_where_two_principal_moments_cross(record_property):
    """Four atoms on a rectangle a x b in the xy plane: at a = b the two in-plane moments cross and the
    frame set turns by 90 degrees about z, so a frame-averaged model that is not invariant by itself
    has an energy that jumps there (reported), while on either side it is smooth. With the "offset"
    position encoding, whose tokens see the orientation directly: the random default-encoding model
    is so nearly invariant at this geometry that its jump (5e-4 eV) hides under its slope (4.3 eV/Å)."""
    model = make("transip", frame_averaging="so3", position_encoding="offset")
    b = 2.0

    def energy(a: float) -> float:
        pos = [[a / 2, b / 2, 0.0], [-a / 2, b / 2, 0.1], [-a / 2, -b / 2, 0.0], [a / 2, -b / 2, 0.1]]
        return float(model(AtomicData.build(pos=pos, atomic_numbers=[6, 1, 8, 1]))["energy"].detach())

    h = 1e-4
    slope = max(abs(energy(b - h) - energy(b - 2 * h)), abs(energy(b + 2 * h) - energy(b + h))) / h
    jump = abs(energy(b + h) - energy(b - h))
    record_property("frame_energy_jump_at_crossing", {"jump_eV": jump, "slope_eV_per_A": slope})
    print(f"frame averaging where principal moments cross: the energy jumps by {jump:.2e} eV over 2e-4 Å "
          f"(slope on either side {slope:.2e} eV/Å)")
    assert np.isfinite(slope) and jump > 100 * h * slope


@pytest.mark.parametrize("group", ["so3", "o3"])
@pytest.mark.parametrize("name, options", [("transip", {}), ("escaip", {"direct_forces": True})])
def test_a_boxed_molecule_turned_inside_its_box_keeps_its_energy(name, options, group):
    """Ethanol rattled by 0.1 Å, centred in a 6 Å vacuum box with pbc False (the usual way ASE and
    extxyz carry molecules), turned about its centroid while the box stays: the frames come from the
    molecule, not the box, so the energy does not change (below 1e-10 eV) and the forces turn with it."""
    from ase.build import molecule

    with pytest.warns(UserWarning, match="direct_forces") if options else contextlib.nullcontext():
        model = make(name, frame_averaging=group, **options)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.1, seed=1)
    atoms.center(vacuum=6.0)
    d = AtomicData.from_ase(atoms)
    assert not bool(d.pbc.any()) and float(d.cell.abs().max()) > 0
    ref = model(d)
    centre = d.pos.mean(0)
    for seed in range(3):
        r = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        turned = d.clone()
        turned.pos = (d.pos - centre) @ r.T + centre
        out = model(turned)
        assert abs(float((out["energy"] - ref["energy"]).detach())) < 1e-10
        torch.testing.assert_close(out["forces"], ref["forces"] @ r.T, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(model(rotate(d, r))["energy"], ref["energy"], rtol=0, atol=1e-10)


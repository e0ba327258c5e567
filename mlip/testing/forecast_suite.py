"""ForecasterTests: the symmetry and conservation checks every forecaster inherits (pytest).

Subclass it with a ``model`` fixture returning a Forecaster (``randomized_forecaster`` makes one
non-trivial) and every check runs on it: rotations and reflections (float64, 1e-8 relative),
translations, permutations, wrapped against unwrapped positions, exact momentum conservation
(1e-9 relative), angular momentum of isolated molecules when the model keeps it, a batch equal to
its structures one by one, and TorchScript equal to eager.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
import torch

from mlip.data import AtomicData
from mlip.graph import collate
from mlip.graph.rotate import rotate
from mlip.nn.momentum import angular_momentum, centre_of_mass, linear_momentum
from mlip.nn.so3 import random_rotation
from mlip.testing.structures import STRUCTURES, with_random_zero_weights

FORECAST_STRUCTURES = ("ethanol", "si2", "triclinic", "slab")


def state(name: str, seed: int = 0, temperature: float = 300.0) -> AtomicData:
    """A suite structure with Maxwell-Boltzmann velocities (Å/fs) at ``temperature`` K, not made
    stationary (so the momentum to keep is not zero), and its masses (amu)."""
    from ase import units

    atoms = STRUCTURES[name]()
    rng = np.random.default_rng(seed)
    masses = atoms.get_masses()
    sigma = np.sqrt(units.kB * temperature / masses)[:, None]  # Å per ASE time unit
    data = AtomicData.from_ase(atoms)
    data.velocities = torch.from_numpy(rng.normal(size=(len(atoms), 3)) * sigma * units.fs)
    data.masses = torch.from_numpy(masses)
    return data


def randomized_forecaster(model, dtype=torch.float64, seed: Optional[int] = 0, interval: float = 5.0):
    """``model`` in ``dtype`` and eval mode, with random values in every weight that starts at zero
    (a zero readout would make every check trivial) and statistics of a molecule at 300 K stepped
    by ``interval`` fs (displacement RMS 0.05 Å, velocity RMS 0.01 Å/fs)."""
    model = with_random_zero_weights(model, dtype, seed)
    model.set_statistics(displacement_rms=0.05, velocity_rms=0.01, interval=interval)
    return model.eval()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) / scale


class ForecasterTests:
    """Inherit and provide a ``model`` fixture (a Forecaster in float64, eval mode)."""

    @pytest.fixture(params=FORECAST_STRUCTURES)
    def structure(self, request) -> AtomicData:
        return state(request.param)

    def test_outputs_are_vectors_of_the_right_size(self, model, structure):
        with torch.no_grad():
            out = model(structure)
        n = structure.pos.shape[0]
        assert out["displacement"].shape == (n, 3) and out["velocities"].shape == (n, 3)
        assert torch.isfinite(out["displacement"]).all() and torch.isfinite(out["velocities"]).all()
        assert float(out["displacement"].abs().max()) > 0

    @pytest.mark.parametrize("reflect", [False, True])
    def test_rotations_and_reflections_turn_the_outputs(self, model, structure, reflect):
        ref = model(structure)
        generator = torch.Generator().manual_seed(1)
        for _ in range(2):
            r = random_rotation(dtype=torch.float64, generator=generator)
            if reflect:
                r = -r  # an improper rotation: displacements and velocities are polar vectors
            out = model(rotate(structure, r))
            assert _relative(out["displacement"], ref["displacement"] @ r.T) < 1e-8
            assert _relative(out["velocities"], ref["velocities"] @ r.T) < 1e-8

    def test_translation_changes_nothing(self, model, structure):
        ref = model(structure)
        moved = structure.clone()
        moved.pos = structure.pos + torch.tensor([0.7, -1.3, 2.1], dtype=structure.pos.dtype)
        out = model(moved)
        assert _relative(out["displacement"], ref["displacement"]) < 1e-10
        assert _relative(out["velocities"], ref["velocities"]) < 1e-10

    def test_wrapped_positions_give_the_same_forecast(self, model):
        data = state("triclinic")
        ref = model(data)
        shifted = data.clone()
        cell = data.cell.reshape(3, 3)
        shifted.pos = data.pos + torch.tensor([[1.0, -2.0, 1.0]], dtype=data.pos.dtype) @ cell
        out = model(shifted)
        assert _relative(out["displacement"], ref["displacement"]) < 1e-10
        assert _relative(out["velocities"], ref["velocities"]) < 1e-10

    def test_permuting_atoms_permutes_the_forecast(self, model, structure):
        ref = model(structure)
        order = torch.from_numpy(np.random.default_rng(3).permutation(structure.pos.shape[0]))
        permuted = structure.clone()
        for key in ("pos", "atomic_numbers", "velocities", "masses"):
            permuted[key] = structure[key][order]
        out = model(permuted)
        assert _relative(out["displacement"], ref["displacement"][order]) < 1e-10
        assert _relative(out["velocities"], ref["velocities"][order]) < 1e-10

    def test_momentum_is_conserved_exactly(self, model, structure):
        out = model(structure)
        batch = torch.zeros(structure.pos.shape[0], dtype=torch.long)
        before = linear_momentum(structure.masses, structure.velocities, batch, 1)
        after = linear_momentum(structure.masses, out["velocities"], batch, 1)
        assert _relative(after, before) < 1e-9
        # the centre of mass moves with that momentum: P Δt / M
        moved = centre_of_mass(structure.masses, structure.pos + out["displacement"], batch, 1) - centre_of_mass(
            structure.masses, structure.pos, batch, 1)
        expected = before * float(model.interval) / structure.masses.sum()
        assert _relative(moved, expected) < 1e-9

    def test_a_still_centre_of_mass_stays_still(self, model):
        data = state("ethanol")
        batch = torch.zeros(data.pos.shape[0], dtype=torch.long)
        data.velocities = data.velocities - (linear_momentum(data.masses, data.velocities, batch, 1)
                                             / data.masses.sum())
        out = model(data)
        moved = centre_of_mass(data.masses, data.pos + out["displacement"], batch, 1) - centre_of_mass(
            data.masses, data.pos, batch, 1)
        assert float(moved.abs().max()) < 1e-12
        assert float(linear_momentum(data.masses, out["velocities"], batch, 1).abs().max()) < 1e-12

    def test_angular_momentum_of_a_molecule_when_asked(self, model):
        model.conserve_angular_momentum = True
        try:
            data = state("ethanol")
            out = model(data)
        finally:
            model.conserve_angular_momentum = False
        batch = torch.zeros(data.pos.shape[0], dtype=torch.long)
        before = angular_momentum(data.masses, data.pos, data.velocities, batch, 1)
        after = angular_momentum(data.masses, data.pos + out["displacement"], out["velocities"], batch, 1)
        assert _relative(after, before) < 1e-9

    def test_batch_equals_one_by_one(self, model):
        structures = [state(name, seed=k) for k, name in enumerate(FORECAST_STRUCTURES)]
        out = model(collate(structures, cutoff=model.cutoff, max_neighbors=model.max_neighbors))
        start = 0
        for data in structures:
            one = model(data)
            n = data.pos.shape[0]
            assert _relative(out["displacement"][start:start + n], one["displacement"]) < 1e-10
            assert _relative(out["velocities"][start:start + n], one["velocities"]) < 1e-10
            start += n

    def test_float32_follows_float64(self, model, structure):
        ref = model(structure)
        out = model.float()(structure)
        model.double()
        assert out["displacement"].dtype == torch.float32
        assert _relative(out["displacement"].double(), ref["displacement"]) < 1e-3

    def test_torchscript_gives_the_eager_forecast(self, model, structure):
        from mlip.graph.build import build_graph

        scripted = torch.jit.script(model)
        data = build_graph(structure.clone(), model.cutoff, model.max_neighbors)
        n = data.pos.shape[0]
        args = (data.pos, data.atomic_numbers, data.masses, data.velocities, data.cell.reshape(-1, 3, 3),
                data.pbc.reshape(-1, 3), data.edge_index, data.cell_shifts, torch.zeros(n, dtype=torch.long), 1)
        ref, out = model.compute(*args), scripted.compute(*args)
        for key in ("displacement", "velocities"):
            assert torch.equal(out[key], ref[key]) or _relative(out[key], ref[key]) < 1e-12

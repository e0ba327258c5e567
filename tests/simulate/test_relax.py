"""Relaxations: cell relaxation finds the model's lattice constant; batched equals one by one;
symmetry and pressure; structure files of any format and the `mlip relax` command."""

import csv

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.spacegroup.symmetrize import check_symmetry

from mlip.calculator import MLIPCalculator
from mlip.cli import main
from mlip.simulate import read_structures, relax_batched, relax_one_by_one

# the fitted models of conftest.py are made once a run: one xdist worker runs the modules that use them
pytestmark = pytest.mark.xdist_group("simulate-fitted")


def copper(a=3.5, repeat=(1, 1, 1), seed=0, rattle=0.05, strain=0.02):
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.set_cell(atoms.cell @ (np.eye(3) + rng.normal(scale=strain, size=(3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def model_lattice_constant(model) -> float:
    """Minimum of the model's E(a) for perfect fcc copper: a fine scan, then a parabola."""
    calc = MLIPCalculator(model)
    grid = np.linspace(3.3, 3.9, 61)
    energies = []
    for a in grid:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
    k = int(np.argmin(energies))
    assert 0 < k < len(grid) - 1, "the model's E(a) has no minimum inside the scan"
    c = np.polyfit(grid[k - 2:k + 3], energies[k - 2:k + 3], 2)
    return -c[1] / (2 * c[0])


def test_cell_relaxation_reaches_fmax_and_the_model_lattice_constant(cu_model):
    (result,) = relax_batched([("cu", copper(a=3.45, repeat=(2, 1, 1)))], cu_model, optimizer="FIRE", fmax=1e-3,
                              steps=2000, relax_cell=True, progress=False)
    assert result.converged and result.fmax < 1e-3
    forces = result.atoms.get_forces()
    assert np.abs(forces).max() < 2e-3
    a = (result.atoms.cell.volume / 2) ** (1 / 3)
    assert a == pytest.approx(model_lattice_constant(cu_model), abs=2e-3)
    assert 3.4 < a < 3.8  # and the model, fitted to EMT, is near EMT's 3.59 Å


@pytest.mark.parametrize("optimizer, relax_cell", [("FIRE", False), ("BFGS", True), ("LBFGS", False)])
def test_batched_relaxation_equals_one_by_one(cu_model, optimizer, relax_cell):
    structures = [("a", copper(seed=1)), ("b", copper(a=3.6, repeat=(2, 1, 1), seed=2)),
                  ("c", copper(a=3.55, repeat=(1, 2, 1), seed=3, rattle=0.1))]
    options = dict(optimizer=optimizer, fmax=0.01, steps=300, relax_cell=relax_cell, progress=False)
    batched = relax_batched(structures, cu_model, **options)
    single = relax_one_by_one(structures, cu_model, **options)
    assert len({r.steps for r in batched}) > 1  # they converge at different steps and drop out
    for b, s in zip(batched, single):
        assert b.name == s.name and b.converged and s.converged
        assert b.steps == s.steps
        assert b.energy == pytest.approx(s.energy, abs=1e-8)
        np.testing.assert_allclose(b.atoms.positions, s.atoms.positions, atol=1e-6)
        np.testing.assert_allclose(np.asarray(b.atoms.cell), np.asarray(s.atoms.cell), atol=1e-6)


def test_symmetry_is_kept_and_pressure_compresses(cu_model):
    start = bulk("Cu", "fcc", a=3.5, cubic=True)
    assert check_symmetry(start, 1e-5).number == 225
    at_0, at_10 = (relax_batched([("cu", start.copy())], cu_model, fmax=1e-3, steps=1000, relax_cell=True,
                                 fix_symmetry=True, pressure=p, progress=False)[0] for p in (0.0, 10.0))
    assert at_0.converged and at_10.converged
    assert check_symmetry(at_10.atoms, 1e-5).number == 225
    assert at_10.atoms.cell.volume < at_0.atoms.cell.volume
    with pytest.raises(ValueError, match="needs cell relaxation"):
        relax_batched([("cu", start.copy())], cu_model, pressure=1.0, progress=False)


def test_read_structures_of_many_formats(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    ase.io.write(folder / "cu.cif", bulk("Cu", "fcc", a=3.6))
    ase.io.write(folder / "POSCAR", bulk("Si", "diamond", a=5.43), format="vasp")
    ase.io.write(folder / "two.extxyz", [molecule("H2O"), molecule("CH4")])
    (folder / "README").write_text("not a structure")
    names = [name for name, _ in read_structures(folder)]
    assert names == ["POSCAR", "cu.cif", "two.extxyz:0", "two.extxyz:1"]
    with pytest.raises(ValueError, match="README: cannot read structures"):
        read_structures(folder / "README")


def test_relax_command_writes_structures_table_and_trajectories(cu_model, tmp_path, capsys):
    cu_model.save(tmp_path / "cu.model")
    ase.io.write(tmp_path / "start.extxyz", [copper(seed=4), copper(a=3.6, seed=5)])
    code = main(["relax", str(tmp_path / "start.extxyz"), str(tmp_path / "cu.model"), "--cell", "--fmax", "0.01",
                 "--trajectory", "--out", str(tmp_path / "out"), "-q"])
    assert code == 0
    relaxed = ase.io.read(tmp_path / "out" / "relaxed.extxyz", index=":")
    assert len(relaxed) == 2 and all(np.abs(a.get_forces()).max() < 0.02 for a in relaxed)
    rows = list(csv.DictReader(open(tmp_path / "out" / "relax.csv")))
    assert [r["name"] for r in rows] == ["start.extxyz:0", "start.extxyz:1"]
    assert all(r["converged"] == "True" for r in rows)
    assert len(list((tmp_path / "out" / "trajectories").glob("*.traj"))) == 2
    assert "2/2 converged" in capsys.readouterr().out


def test_relax_flags_structures_outside_the_data(cu_committee, tmp_path, capsys):
    """A vacancy in copper at the fitted lattice constant (3.6 Å, inside the 3.45-3.75 Å the members
    were fitted on) and in a cell squeezed to 3.1 Å: the committee's force std after relaxing is
    0.04 against 1.0 eV/Å (measured), and --max-uncertainty 0.3 flags only the squeezed one."""
    for a in (3.6, 3.1):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
        del atoms[0]
        atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
        ase.io.write(tmp_path / f"vacancy_{a}.extxyz", atoms)
    for k, member in enumerate(cu_committee.members):
        member.save(tmp_path / f"cu{k}.model")
    cu_committee.save(tmp_path / "committee.pt")
    code = main(["relax", str(tmp_path / "vacancy_3.6.extxyz"), str(tmp_path / "vacancy_3.1.extxyz"),
                 str(tmp_path / "committee.pt"), "--max-uncertainty", "0.3", "--out", str(tmp_path / "out"), "-q"])
    out = capsys.readouterr().out
    assert code == 1 and "UNCERTAIN" in out and "1 structure(s)" in out
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "out" / "relax.csv"))}
    flags = {name.split(":")[0].split("/")[-1]: (r["converged"], r["uncertain"], float(r["max_forces_std_eV_A"]))
             for name, r in rows.items()}
    assert [v[1] for k, v in sorted(flags.items())] == ["True", "False"]  # 3.1 flagged, 3.6 not
    assert all(v[0] == "True" for v in flags.values())
    # without an uncertainty the option is refused
    with pytest.raises(SystemExit, match="needs a model with an uncertainty"):
        main(["relax", str(tmp_path / "vacancy_3.6.extxyz"), str(tmp_path / "cu0.model"), "--max-uncertainty",
              "0.3", "--out", str(tmp_path / "out2"), "-q"])

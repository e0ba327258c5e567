"""``mlip verify MODEL [STRUCTURE]``: a user's check of their own model on their own system before a
production run. Each check is a row (name, measured value, limit, pass/fail); the command prints the
table, plots the dimer curves and exits 1 when a check fails.

Checks, on the structure (default: the suite's structures the model's elements cover):
    rotation         worst relative change of energy, forces under random rotations
    forces           forces against central finite differences of the energy (float64 copy)
    stress           stress against finite strains (periodic structures; float64 copy)
    nve drift        total-energy drift of a short NVE run, meV/atom/ps (the model's own dtype)
    dimer A-B        energy rises monotonically from 0.95 x the pair's r_min down to 0.3 Å (every pair
                     of the elements the model was fitted on; r_min the shortest distance the pair
                     has in the training data, or 0.75x the covalent distance for a pair the data
                     lacks: where the repulsion prior has taken over, mlip.nn.repulsion)
    squeeze          energy rises monotonically as the structure, relaxed with the model (and its
                     cell if periodic), is squeezed uniformly to 70% of its volume (steps of 1%)
    kernels          Triton kernels against their torch references (on a GPU; "no GPU" otherwise)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from mlip.data import AtomicData


@dataclass
class Check:
    name: str
    value: float
    limit: float
    passed: Optional[bool]  # None: not applicable here (reported, not failed)
    unit: str = ""
    note: str = ""


def fitted_elements(model, atoms=None) -> List[int]:
    """Elements the model was fitted on (non-zero reference energies), else the structure's."""
    members = getattr(model, "members", [model])
    refs = members[0].reference_energies
    fitted = [int(z) for z in torch.nonzero(refs).flatten() if bool(members[0].known_species[int(z)])]
    if fitted:
        return fitted
    return sorted(set(atoms.get_atomic_numbers().tolist())) if atoms is not None else []


def rotation_check(model, data) -> Check:
    from mlip.testing.equivariance import equivariance_errors

    errors = equivariance_errors(model, data, rotations=3)
    worst = max(errors["energy"], errors["forces"])
    exact = getattr(model, "exactly_equivariant", True)
    limit = (1e-8 if model.dtype == torch.float64 else 1e-4) if exact else 0.1
    return Check("rotation", worst, limit, worst < limit, "relative",
                 "exactly equivariant" if exact else "learned symmetry")


def force_check(model64, data, atoms_checked: int = 4) -> Check:
    """Largest |F + dE/dx| over a few atoms' components, relative to the largest force."""
    out = model64(data, compute_stress=False)
    forces = out["forces"].detach()
    worst = 0.0
    h = 1e-4
    for atom in np.linspace(0, data.pos.shape[0] - 1, min(atoms_checked, data.pos.shape[0])).astype(int):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                moved = data.clone()
                moved.pos = data.pos.clone().double()
                moved.pos[atom, axis] += sign * h
                energies.append(float(model64(moved, compute_forces=False, compute_stress=False)["energy"].detach()))
            fd = -(energies[0] - energies[1]) / (2 * h)
            worst = max(worst, abs(fd - float(forces[atom, axis])))
    scale = max(float(forces.abs().max()), 1e-3)
    return Check("forces", worst / scale, 1e-4, worst / scale < 1e-4, "relative", "against finite differences")


def stress_check(model64, data) -> Check:
    if not bool(data.pbc.all()):
        return Check("stress", float("nan"), 1e-4, None, "relative", "not periodic")
    stress = model64(data)["stress"].detach().reshape(3, 3)
    volume = float(torch.linalg.det(data.cell.reshape(3, 3).double()).abs())
    h, worst = 1e-5, 0.0
    for i, j in ((0, 0), (1, 1), (2, 2), (0, 1)):
        energies = []
        for sign in (1, -1):
            strain = torch.eye(3, dtype=torch.float64)
            strain[i, j] += sign * h / (2 if i != j else 1)
            strain[j, i] += sign * h / 2 if i != j else 0.0
            moved = data.clone()
            moved.pos, moved.cell = data.pos.double() @ strain.T, (data.cell.reshape(3, 3).double() @ strain.T)[None]
            energies.append(float(model64(moved, compute_forces=False, compute_stress=False)["energy"].detach()))
        fd = (energies[0] - energies[1]) / (2 * h) / volume
        worst = max(worst, abs(fd - float(stress[i, j])))
    scale = max(float(stress.abs().max()), 1e-4)
    return Check("stress", worst / scale, 1e-4, worst / scale < 1e-4, "relative", "against finite strains")


def nve_check(model, atoms, steps: int = 400, timestep: float = 0.5, temperature: float = 300.0,
              limit: float = 1.0) -> Check:
    """Linear drift of the total energy over ``steps`` NVE steps, meV/atom/ps."""
    import tempfile

    from mlip.calculator import MLIPCalculator
    from mlip.simulate.md import run_md

    with tempfile.TemporaryDirectory() as out:
        result = run_md(atoms.copy(), MLIPCalculator(model), ensemble="nve", timestep=timestep, steps=steps,
                        temperature=temperature, out_dir=out, log_interval=10, progress=False)
        rows = np.loadtxt(f"{out}/md.csv", delimiter=",", skiprows=1, usecols=(1, 4), ndmin=2)
    if result.stopped:
        return Check("nve drift", float("inf"), limit, False, "meV/atom/ps", result.stopped)
    slope = np.polyfit(rows[:, 0] / 1000.0, rows[:, 1], 1)[0]  # eV/ps
    drift = abs(slope) / len(atoms) * 1000
    return Check("nve drift", drift, limit, drift < limit, "meV/atom/ps", f"{steps} steps of {timestep} fs")


def dimer_start(model, a: int, b: int) -> float:
    """Å: where a dimer check starts, 0.95 x the pair's r_min (the shortest distance the training data
    has for the pair, or 0.75x the covalent distance for a pair the data lacks), where the learned
    part no longer sees the pair come closer (mlip.nn.repulsion); 0.95 x 0.75 x the covalent
    distance for a model without the prior."""
    from ase.data import covalent_radii

    member = getattr(model, "members", [model])[0]
    prior = getattr(member, "repulsion", None)
    if prior is None:
        return 0.95 * 0.75 * float(covalent_radii[a] + covalent_radii[b])
    z = torch.tensor([a]), torch.tensor([b])
    return float(prior.freeze) * float(prior.window(z[0], z[1], torch.float64)[1][0])


def dimer_curves(model, elements, step: float = 0.01):
    """{(a, b): (distances Å, energies eV relative to the pair far apart)} for every pair, from 0.3 Å
    to the top of the pair's short-range window (``dimer_start``) in steps of ``step``."""
    curves = {}
    for i, a in enumerate(elements):
        for b in elements[i:]:
            top = dimer_start(model, a, b)
            distances = np.linspace(0.3, top, max(2, int(round((top - 0.3) / step)) + 1))
            far = 2 * model.cutoff + 1.0

            def energy(r):
                d = AtomicData.build(pos=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]], atomic_numbers=[a, b])
                return float(model(d, compute_forces=False, compute_stress=False)["energy"].detach())

            curves[(a, b)] = (distances, np.array([energy(r) for r in distances]) - energy(far))
    return curves


def dimer_checks(curves) -> List[Check]:
    from ase.data import chemical_symbols

    rows = []
    for (a, b), (distances, energies) in curves.items():
        rising = np.diff(energies) < 0
        where = distances[1:][~rising]
        rows.append(Check(f"dimer {chemical_symbols[a]}-{chemical_symbols[b]}", float(energies[0]), 0.0,
                          bool(rising.all()), "eV at 0.3 Å",
                          "repulsive" if rising.all() else f"not monotonic at {where.max():.2f} Å"))
    return rows


def squeeze_energies(model, atoms, smallest: float = 0.7, step: float = 0.01):
    """(volume fractions, energies eV) of ``atoms`` squeezed uniformly (positions about their centroid,
    and the cell) from its own volume down to ``smallest`` of it."""
    from mlip.calculator import atoms_to_data

    fractions = np.arange(1.0, smallest - 1e-9, -step)
    centre = atoms.get_positions().mean(0)
    energies = []
    for fraction in fractions:
        scale = fraction ** (1.0 / 3.0)
        squeezed = atoms.copy()
        squeezed.set_cell(np.asarray(atoms.get_cell()) * scale, scale_atoms=False)
        squeezed.set_positions(centre + (atoms.get_positions() - centre) * scale)
        d = atoms_to_data(squeezed)
        energies.append(float(model(d, compute_forces=False, compute_stress=False)["energy"].detach()))
    return fractions, np.array(energies)


def relaxed(model, atoms, fmax: float = 1e-3, steps: int = 2000):
    """A copy of ``atoms`` at the model's own minimum (BFGS on the positions, and the cell too for a
    structure periodic in all three directions; ``fmax`` eV/Å), where squeezing it must cost energy.
    The minimum is tight: on a soft, briefly trained model a structure at 0.01 eV/Å can still sit on
    a slope along the squeeze, so that its first 1% falls."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    from mlip.calculator import MLIPCalculator

    out = atoms.copy()
    out.calc = MLIPCalculator(model)
    BFGS(FrechetCellFilter(out) if out.pbc.all() else out, logfile=None).run(fmax=fmax, steps=steps)
    out.calc = None
    return out


def squeeze_check(model, atoms, smallest: float = 0.7, relax: bool = True) -> Check:
    """The structure relaxed with the model (``relax``), then squeezed uniformly: its energy must rise
    at every step."""
    fractions, energies = squeeze_energies(model, relaxed(model, atoms) if relax else atoms, smallest)
    rising = np.diff(energies) > 0
    if rising.all():
        note = f"rises to {energies[-1] - energies[0]:.3g} eV at {smallest:.0%} of the volume"
    else:
        note = f"falls at {fractions[1:][~rising].max():.0%} of the volume"
    return Check("squeeze", float(energies[-1] - energies[0]), 0.0, bool(rising.all()), "eV at 70%", note)


def kernel_check(model, data) -> Check:
    """Energies and forces with the Triton kernels against the torch references (CUDA only)."""
    if not torch.cuda.is_available():
        return Check("kernels", float("nan"), 1e-4, None, "relative", "no GPU: Triton checked by the tests only")
    from mlip.kernels import backend

    gpu = copy.deepcopy(model).to("cuda")
    d = data.to("cuda")
    with backend("torch"):
        ref = gpu(d)
    with backend("triton"):
        out = gpu(d)
    scale = max(float(ref["forces"].abs().max()), 1e-3)
    error = float((out["forces"] - ref["forces"]).abs().max()) / scale
    return Check("kernels", error, 1e-4, error < 1e-4, "relative", torch.cuda.get_device_name())


def verify(model, atoms, plot: Optional[str] = None, nve_steps: int = 400) -> List[Check]:
    """Every check of the module docstring on ``atoms``; writes the dimer plot to ``plot``."""
    from mlip.calculator import atoms_to_data
    from mlip.graph import build_graph

    data64 = build_graph(atoms_to_data(atoms), model.cutoff, model.max_neighbors)
    data = data64.clone()
    data.pos, data.cell = data64.pos.to(model.dtype), data64.cell.to(model.dtype)
    model64 = copy.deepcopy(model).double().eval()
    checks = [rotation_check(model, data), force_check(model64, data64), stress_check(model64, data64),
              nve_check(model, atoms, steps=nve_steps)]
    # dimers and the squeeze in float64: energy steps of 0.01 Å near a minimum are below float32's resolution
    curves = dimer_curves(model64, fitted_elements(model, atoms))
    checks += dimer_checks(curves)
    checks.append(squeeze_check(model64, atoms))
    checks.append(kernel_check(model, data))
    if plot:
        dimer_plot(curves, plot)
    return checks


def dimer_plot(curves, out_png: str) -> str:
    from ase.data import chemical_symbols

    from mlip.train.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (a, b), (distances, energies) in curves.items():
        ax.plot(distances, energies, label=f"{chemical_symbols[a]}-{chemical_symbols[b]}")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("distance (Å)")
    ax.set_ylabel("E(r) - E(far apart) (eV)")
    ax.set_title("dimer curves below each pair's shortest training distance")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def format_checks(checks: List[Check]) -> str:
    lines = [f"{'check':<14}{'value':>12}{'limit':>10}  {'unit':<12}{'result':<7}note"]
    for c in checks:
        result = "n/a" if c.passed is None else ("pass" if c.passed else "FAIL")
        value = "-" if not np.isfinite(c.value) else f"{c.value:.3g}"
        limit = "" if c.name.startswith(("dimer", "squeeze")) else f"{c.limit:g}"
        lines.append(f"{c.name:<14}{value:>12}{limit:>10}  {c.unit:<12}{result:<7}{c.note}")
    return "\n".join(lines)


def default_structures(model):
    """The suite's structures whose elements the model was fitted on."""
    from mlip.testing.structures import STRUCTURES

    elements = set(fitted_elements(model)) or None
    chosen = []
    for name, make in STRUCTURES.items():
        atoms = make()
        if elements is None or set(atoms.get_atomic_numbers().tolist()) <= elements:
            chosen.append((name, atoms))
    return chosen


def cmd_verify(args) -> int:
    from mlip.loading import load

    model = load(args.model.split(",") if "," in args.model else args.model)
    if args.structure:
        from mlip.simulate.structures import read_structures

        structures = read_structures([args.structure])[:1]
    else:
        structures = default_structures(model)
        if not structures:
            raise SystemExit("mlip verify: none of the built-in structures has only this model's elements; "
                             "pass a STRUCTURE")
    failed = False
    for name, atoms in structures:
        plot = args.plot or f"verify_{name.replace('/', '_').replace(':', '_')}.png"
        checks = verify(model, atoms, plot=plot, nve_steps=args.nve_steps)
        print(f"mlip verify: {args.model} on {name} ({len(atoms)} atoms)")
        print(format_checks(checks))
        print(f"dimer curves: {plot}")
        failed |= any(c.passed is False for c in checks)
    print("mlip verify: " + ("a check FAILED" if failed else "all checks passed"))
    return 1 if failed else 0


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check a model on your structure before production (table, plot, exit 1 on failure)")
    p.add_argument("model", help="model file, checkpoint, committee, or comma-separated model files")
    p.add_argument("structure", nargs="?", default=None, help="structure file (default: built-in structures)")
    p.add_argument("--nve-steps", type=int, default=400, help="steps of the NVE drift check (0.5 fs)")
    p.add_argument("--plot", default=None, help="dimer-curve plot path (default: verify_<structure>.png)")
    p.set_defaults(func=cmd_verify)

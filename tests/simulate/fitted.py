"""Small Facet models fitted in seconds for the simulation tests: to ASE's EMT copper (a smooth
potential with a real lattice constant, so relaxations and NPT have a physical target)."""

from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip.data import AtomicData
from mlip.graph import collate
from mlip.models import build
from mlip.train.loss import PotentialLoss


def emt_copper_frames(n: int = 24, seed: int = 0):
    """Rattled, strained 4-atom fcc copper cells with EMT energies, forces and stresses."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.45, 3.75), cubic=True)
        atoms.set_cell(atoms.cell @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        frames.append(AtomicData.from_ase(atoms))
    return frames


def fit(model, frames, steps: int = 200, lr: float = 5e-3, stress_weight: float = 10.0, seed: int = 0,
        dtype=torch.float64):
    """Full-batch AdamW on energy, forces and stress, in float32 (faster; the fit need not be
    precise); returns the model in eval mode in ``dtype`` (the simulations' precision)."""
    from mlip.data import compute_statistics

    model = model.float()
    torch.manual_seed(seed)
    batch = collate(frames, cutoff=model.cutoff)
    stats = compute_statistics(frames, cutoff=model.cutoff, prior=model.prior)
    model.set_statistics(stats["reference_energies"], scale=float(stats["force_rms"]),
                         avg_num_neighbors=stats["avg_num_neighbors"])
    loss_fn = PotentialLoss(energy_weight=1.0, forces_weight=10.0, stress_weight=stress_weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(batch), batch)["loss"]
        loss.backward()
        optimizer.step()
    return model.to(dtype).eval()


def copper_model(dtype=torch.float64, seed: int = 0):
    """Fitted to EMT between the first (2.55 Å) and second (3.6 Å) neighbour shells; ``seed``: of
    the initial weights (committee members differ in it)."""
    torch.manual_seed(seed)
    model = build("facet", preset="small", cutoff=3.2, species=[29])
    return fit(model, emt_copper_frames(), steps=400, seed=seed, dtype=dtype)


def ethanol_model(dtype=torch.float64):
    """Fitted briefly to 32 bundled rMD17 ethanol structures (energies and forces)."""
    from mlip.data import open_dataset

    root = Path(__file__).resolve().parents[2] / "data" / "rmd17"
    dataset = open_dataset(str(root / "rmd17_ethanol_train_01.npz"))
    frames = [dataset[i] for i in range(0, 640, 20)]
    torch.manual_seed(0)
    model = build("facet", preset="small", species=[1, 6, 8])
    return fit(model, frames, steps=200, stress_weight=0.0, dtype=dtype)

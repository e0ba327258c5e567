"""`mlip verify` (mlip/verify.py): a fitted model passes; a model whose forces are not the gradient
of its energy fails, with exit status 1."""

import pytest
import torch

import mlip.loading
from mlip.cli import main
from mlip.testing.structures import ethanol
from mlip.verify import verify
from tests.simulate.fitted import ethanol_model


class BrokenForces(torch.nn.Module):
    """A test double: a real model whose forces are 5% too large."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.cutoff, self.max_neighbors = model.cutoff, model.max_neighbors
        self.reference_energies, self.known_species = model.reference_energies, model.known_species

    @property
    def dtype(self):
        return self.model.dtype

    def forward(self, data, compute_forces=True, compute_stress=True):
        out = dict(self.model(data, compute_forces=compute_forces, compute_stress=compute_stress))
        if "forces" in out:
            out["forces"] = out["forces"] * 1.05
        return out


def test_verify_passes_a_fitted_model_and_fails_broken_forces(tmp_path, monkeypatch, capsys):
    model = ethanol_model()
    model.save(tmp_path / "ethanol.model")
    monkeypatch.chdir(tmp_path)
    code = main(["verify", str(tmp_path / "ethanol.model"), "--nve-steps", "200"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "all checks passed" in out and "dimer C-O" in out and (tmp_path / "verify_ethanol.png").exists()

    checks = {c.name: c for c in verify(BrokenForces(model), ethanol(), nve_steps=50)}
    assert checks["forces"].passed is False and checks["forces"].value > 0.01
    monkeypatch.setattr(mlip.loading, "load", lambda path, device="cpu": BrokenForces(model))
    assert main(["verify", "broken.model", "--nve-steps", "50"]) == 1
    assert "a check FAILED" in capsys.readouterr().out


class Collapsing(torch.nn.Module):
    """A test double: every pair attracts, E = -sum over pairs of 1/r (eV, r in Å), no prior."""

    cutoff, max_neighbors, repulsion = 5.0, None, None
    dtype = torch.float64

    def forward(self, data, compute_forces=True, compute_stress=True):
        pos = data.pos.double()
        r = (pos[:, None] - pos[None]).norm(dim=-1)
        pairs = torch.triu(torch.ones_like(r, dtype=torch.bool), diagonal=1)
        return {"energy": -(1.0 / r[pairs]).sum().reshape(1)}


def test_dimers_and_squeeze_fail_where_atoms_collapse():
    from mlip.verify import dimer_checks, dimer_curves, dimer_start, squeeze_check

    rows = dimer_checks(dimer_curves(Collapsing(), [1, 8]))
    assert [r.name for r in rows] == ["dimer H-H", "dimer H-O", "dimer O-O"] and not any(r.passed for r in rows)
    squeeze = squeeze_check(Collapsing(), ethanol(), relax=False)  # (relaxing would collapse it)
    assert squeeze.passed is False and "falls at" in squeeze.note
    # a fitted model: its dimers start at the top of each pair's window, below its training distances
    model = ethanol_model()
    model.set_pair_min_distance([(1, 6, 1.05)])
    assert dimer_start(model, 6, 1) == pytest.approx(0.95 * 1.05)  # 0.95 x its r_min

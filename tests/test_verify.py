"""`mlip verify` (mlip/verify.py): a fitted model passes; a model whose forces are not the gradient
of its energy fails, with exit status 1."""

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

"""eSCN beyond the shared physics suite (the roll about each edge: tests/models/test_edge_frames.py): the direct-force
head is nearly equivariant and warns, the paper-size OC20 preset builds and takes a training step."""

import pytest
import torch

from mlip.models import build
from mlip.nn.so2 import SO2Linear, kept_coefficients
from mlip.nn.so3 import block_wigner_D
from mlip.testing import equivariance_errors
from tests.models.structures import data, make


def z_rotation(angle: float) -> torch.Tensor:
    c, s = torch.cos(torch.tensor(angle, dtype=torch.float64)), torch.sin(torch.tensor(angle, dtype=torch.float64))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def test_so2_linear_commutes_with_rotations_about_z():
    torch.manual_seed(0)
    lmax, mmax = 3, 2
    layer = SO2Linear(lmax, mmax, 4, 5).double()
    kept = torch.tensor(kept_coefficients(lmax, mmax))
    x = torch.randn(7, len(kept), 4, dtype=torch.float64)
    d = block_wigner_D(lmax, z_rotation(0.7))[kept][:, kept]  # z rotations keep |m|: block-diagonal in m
    torch.testing.assert_close(layer(torch.einsum("ab,ebc->eac", d, x)), torch.einsum("ab,ebc->eac", d, layer(x)),
                               atol=1e-12, rtol=0)


def test_direct_forces_warn_and_report_a_small_equivariance_error(record_property):
    with pytest.warns(UserWarning, match="not the gradient of the energy"):
        model = make("escn", direct_forces=True)
    errors = equivariance_errors(model, data("triclinic"), rotations=4)
    record_property("direct_force_equivariance_error", errors["forces"])
    print(f"eSCN direct forces: relative equivariance error {errors['forces']:.2e}")
    assert errors["forces"] < 1e-6 and errors["energy"] < 1e-8
    forces = model(data("ethanol"))["forces"]
    assert forces.abs().max() > 0 and not forces.requires_grad or forces.grad_fn is not None


def test_oc20_preset_builds_and_takes_a_training_step():
    torch.manual_seed(0)
    model = build("escn", preset="oc20")
    assert (model.lmax, model.frame.mmax, model.channels, len(model.blocks)) == (6, 2, 128, 12)
    assert model.cutoff == 12.0 and model.max_neighbors == 20
    model.train()
    batch = data("slab")  # 8 Cu atoms: every atom keeps its 20 nearest neighbours
    out = model(batch, compute_stress=False)
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

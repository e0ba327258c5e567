"""The physics suite's core checks with every kernel forced to its Triton implementation (through the
interpreter on CPU), one small structure per potential: the same energies, forces, stress and
force-loss weight gradients as the torch references, forces still minus the gradient, and (for the
exactly equivariant potentials) rotation equivariance."""

import pytest
import torch

from mlip.data import AtomicData
from mlip.graph import collate
from mlip.kernels import backend
from mlip.kernels.launch import launches
from mlip.models import registered
from mlip.kernels import FUSED_BACKWARD
from mlip.testing import equivariance_errors
from mlip.testing.suite import energy, fd_agrees
from mlip.testing.structures import water
from tests.models.structures import data, make


def force_paths(model):
    """The fused backward kernels that inference forces run (no weight gradients wanted)."""
    return {f"{k}_backward" for k in model.kernels & FUSED_BACKWARD}


@pytest.fixture(params=registered())
def name(request):
    return request.param


def outputs_and_weight_gradients(model, batch):
    out = model(batch)
    loss = out["forces"].square().sum() + out["energy"].square().sum() + out["stress"].square().sum()
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
    return {k: v.detach() for k, v in out.items()}, [g for g in grads if g is not None]


def test_kernels_give_the_references_numbers(name):
    assert_kernels_give_the_references_numbers(make(name).train())


def test_facet_gaunt_messages_on_the_kernel_give_the_references_numbers():
    """One block on a water molecule: the Gaunt kernels are slow through the interpreter (their own
    tests, tests/kernels/test_gaunt.py, cover the shapes)."""
    model = make("facet", tensor_product="gaunt", correlation=2, num_layers=1, channels=8, hidden=16).train()
    assert "gaunt_edge" in model.kernels
    assert_kernels_give_the_references_numbers(model, [AtomicData.from_ase(water())])


def assert_kernels_give_the_references_numbers(model, structures=None):
    structures = structures or [data("ethanol"), data("si2")]
    batch = collate(structures, cutoff=model.cutoff, max_neighbors=model.max_neighbors)
    with backend("torch"):
        reference, reference_grads = outputs_and_weight_gradients(model, batch)
    launches.clear()
    with backend("triton"):
        fused, fused_grads = outputs_and_weight_gradients(model, batch)
    assert model.kernels and model.kernels <= set(launches), dict(launches)
    for key in reference:
        torch.testing.assert_close(fused[key], reference[key], rtol=1e-9, atol=1e-10, msg=key)
    assert len(fused_grads) == len(reference_grads)
    # the gradient of the force loss, a second derivative: float64 rounding is relative to the largest
    # gradient (a weight whose exact gradient is 0 gets ~1e-10 from either side's summation order)
    scale = max(float(g.abs().max()) for g in reference_grads)
    for a, b in zip(fused_grads, reference_grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10 + 1e-11 * scale)


def test_forces_and_equivariance_with_kernels(name):
    model = make(name).eval()
    d = data("ethanol")
    launches.clear()
    with backend("triton"):
        forces = model(d)["forces"].detach()
    assert force_paths(model) <= set(launches), dict(launches)
    with backend("triton"):
        def shifted(x):
            moved = d.clone()
            moved.pos = d.pos.clone()
            moved.pos[2, 1] += x
            return energy(model, moved)

        assert fd_agrees(shifted, -float(forces[2, 1]), rel=1e-5, abs_tol=1e-7)
        errors = equivariance_errors(model, d, rotations=1)
    if not model.exactly_equivariant:
        assert errors["forces"] > 0  # measured, not built in
    else:
        assert errors["energy"] < 1e-8 and errors["forces"] < 1e-8, errors

"""EquiformerV2 beyond the shared physics suite: its attention weights, the separable layer norm,
the direct-force head, and the paper's OC20 model size taking a training step."""

import pytest
import torch

from mlip.models import build
from mlip.models.equiformer_v2 import envelope_softmax
from mlip.nn.separable import SeparableLayerNorm
from mlip.testing import equivariance_errors
from tests.models.structures import data, make


def test_attention_weights_fade_in_with_the_envelope():
    """Weights of a target's edges: a softmax with one more slot of logit 0 when every envelope is
    1; an edge at the cutoff (envelope 0) has weight 0 and leaves the others as they were."""
    torch.manual_seed(0)
    logits = torch.randn(5, 3, dtype=torch.float64) * 3
    target = torch.tensor([0, 0, 0, 1, 1])
    ones = torch.ones(5, dtype=torch.float64)
    weights = envelope_softmax(logits, ones, target, 2)
    for node in (0, 1):
        rows = target == node
        padded = torch.cat([logits[rows], torch.zeros(1, 3, dtype=torch.float64)])
        torch.testing.assert_close(weights[rows], torch.softmax(padded, dim=0)[:-1], rtol=1e-12, atol=0)
    envelope = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    faded = envelope_softmax(logits, envelope, target, 2)
    assert bool((faded[2] == 0).all())
    without = envelope_softmax(logits[[0, 1, 3, 4]], ones[:4], target[[0, 1, 3, 4]], 2)
    torch.testing.assert_close(faded[[0, 1, 3, 4]], without, rtol=1e-12, atol=0)
    big = envelope_softmax(logits + 800.0, ones, target, 2)  # no overflow: the largest logit is taken out
    assert bool(torch.isfinite(big).all()) and float(big.sum()) == pytest.approx(6.0, abs=1e-12)  # 2 targets x 3 heads, the null slot negligible


def test_separable_layer_norm_normalises_l0_and_the_rest_apart():
    torch.manual_seed(0)
    norm = SeparableLayerNorm(2, 16).double()
    x = torch.randn(4, 9, 16, dtype=torch.float64) * torch.tensor([5.0, 0.1, 0.1, 0.1, 3, 3, 3, 3, 3]).double()[:, None]
    y = norm(x)
    torch.testing.assert_close(y[:, 0].mean(-1), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(y[:, 0].pow(2).mean(-1), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)
    # l = 1 and l = 2 share one scale: their ratio is kept
    ratio_in = x[:, 4:].pow(2).mean((1, 2)) / x[:, 1:4].pow(2).mean((1, 2))
    ratio_out = y[:, 4:].pow(2).mean((1, 2)) / y[:, 1:4].pow(2).mean((1, 2))
    torch.testing.assert_close(ratio_out, ratio_in, rtol=1e-12, atol=0)


def test_direct_forces_warn_and_are_equivariant(record_property):
    with pytest.warns(UserWarning, match="not the gradient of the energy"):
        model = make("equiformer_v2", direct_forces=True)
    errors = equivariance_errors(model, data("triclinic"), rotations=4)
    record_property("direct_force_equivariance_error", errors["forces"])
    print(f"EquiformerV2 direct forces: relative equivariance error {errors['forces']:.2e}")
    assert errors["forces"] < 1e-8 and errors["energy"] < 1e-8
    forces = model(data("ethanol"))["forces"]
    assert forces.abs().max() > 0


def test_oc20_preset_builds_and_takes_a_training_step():
    """The paper's "EquiformerV2 (31M)" OC20 S2EF model: lmax 4, mmax 2, 8 blocks, 128 channels."""
    torch.manual_seed(0)
    model = build("equiformer_v2", preset="oc20")
    assert (model.lmax, model.frame.mmax, model.channels, len(model.blocks)) == (4, 2, 128, 8)
    assert model.cutoff == 12.0 and model.max_neighbors == 20
    parameters = sum(p.numel() for p in model.parameters())
    print(f"EquiformerV2 oc20 preset: {parameters / 1e6:.1f} M parameters")
    model.train()
    out = model(data("slab"), compute_stress=False)
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

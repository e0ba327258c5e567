import pytest
import torch

from mlip.train.loss import PotentialLoss
from mlip.train.metrics import ErrorMetrics


class Batch(dict):
    """Enough of a torch_geometric Batch for the loss: ``key in batch`` and ``batch.key``."""

    __getattr__ = dict.__getitem__


def make_batch():
    return Batch(energy=torch.tensor([1.0, float("nan")]), natoms=torch.tensor([2, 1]),
                 forces=torch.tensor([[1.0, 0, 0], [0, 0, 0], [float("nan")] * 3]),
                 stress=torch.full((2, 3, 3), float("nan")))


def test_nan_targets_are_masked_and_weights_apply():
    pred = {"energy": torch.tensor([3.0, 100.0]), "forces": torch.tensor([[2.0, 0, 0], [0, 0, 1.0], [5.0, 5, 5]]),
            "stress": torch.zeros(2, 3, 3)}
    loss = PotentialLoss(energy_weight=2.0, forces_weight=3.0, stress_weight=1.0)(pred, make_batch())
    assert loss["loss_energy"].item() == pytest.approx(1.0)  # ((3 - 1) / 2)^2, the NaN structure skipped
    assert loss["loss_forces"].item() == pytest.approx(2 / 6)  # two unit errors over six finite components
    assert loss["loss_stress"].item() == 0.0  # no stress targets at all
    assert loss["loss"].item() == pytest.approx(2 * 1.0 + 3 * 2 / 6)


@pytest.mark.parametrize("kind, expected", [("l1", 1.0), ("huber", 0.5 * 0.5 * 0.5), ("mse", 1.0)])
def test_kinds(kind, expected):
    pred = {"energy": torch.tensor([3.0, 0.0]), "forces": torch.zeros(3, 3), "stress": torch.zeros(2, 3, 3)}
    loss = PotentialLoss(energy_weight=1.0, forces_weight=0.0, kind=kind, huber_delta=0.5)(pred, make_batch())
    value = loss["loss_energy"].item()
    if kind == "huber":  # |d| = 1 > delta: delta * (|d| - delta / 2)
        expected = 0.5 * (1.0 - 0.25)
    assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="loss kind"):
        PotentialLoss(kind="cubic")


def test_metrics_accumulate_over_batches():
    m = ErrorMetrics()
    b = make_batch()
    m.update({"energy": torch.tensor([2.0, 0.0]), "forces": torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 0, 0]]),
              "stress": torch.zeros(2, 3, 3)}, b)
    out = m.compute()
    assert out["energy_mae"] == pytest.approx(1.0) and out["energy_per_atom_mae"] == pytest.approx(0.5)
    assert out["forces_mae"] == pytest.approx(1 / 6) and out["forces_rmse"] == pytest.approx((1 / 6) ** 0.5)
    assert "stress_mae" not in out


def test_a_non_finite_prediction_is_not_masked():
    """Only NaN targets are masked: a diverging model must give a non-finite loss, not a small one."""
    for bad in (float("nan"), float("inf")):
        pred = {"energy": torch.tensor([bad, 0.0]), "forces": torch.zeros(3, 3), "stress": torch.zeros(2, 3, 3)}
        assert not torch.isfinite(PotentialLoss(kind="huber")(pred, make_batch())["loss"])

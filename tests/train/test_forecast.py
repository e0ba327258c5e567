"""A forecaster trained through `mlip train experiment=forecast` on the bundled quartz trajectory:
its checkpoint, metrics and plots, the model file and TorchScript export, and `mlip forecast`."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from mlip.cli import main
from mlip.data.trajectory import ForecastPairs, Trajectory, time_block_splits
from mlip.loading import load
from mlip.models.forecaster import Forecaster
from mlip.train.run import compose, train

QUARTZ = Path(__file__).resolve().parents[2] / "data" / "trajectories" / "quartz_bks_300K.lammpstrj.gz"
pytestmark = pytest.mark.xdist_group("forecast_training")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    # three epochs (about 12 s on two cores), not a time budget: the same model on a loaded machine
    cfg = compose(["experiment=forecast", "model.preset=small", "trainer.max_epochs=3", f"run_dir={root}",
                   "trainer.enable_progress_bar=false", "data.stride=3", "optim.warmup_steps=5"])
    return train(cfg)


def test_training_learns_the_motion_and_writes_its_run(trained):
    run = Path(trained["run_dir"])
    stats = json.loads((run / "statistics.json").read_text())["applied"]
    assert stats["interval"] == pytest.approx(30.0) and stats["stride"] == 3
    metrics = trained["test_metrics"]
    # after three epochs, clearly better than forecasting no motion (MAE: the mean |component| of the test targets)
    traj = Trajectory.read(QUARTZ, md_timestep=1.0)
    test = ForecastPairs([traj], 3, [time_block_splits(len(traj), 3, 0.1, 0.1)["test"]])
    still = np.mean([float(test[k].displacement.abs().mean()) for k in range(len(test))])
    assert metrics["displacement_mae"] < 0.8 * still
    assert metrics["velocities_mae"] < np.mean([float(test[k].next_velocities.abs().mean()) for k in range(len(test))])
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "parity_test.png", "learning_curve.png"):
        assert (run / name).is_file(), name


def test_the_checkpoint_is_a_forecaster_with_its_statistics(trained, tmp_path):
    model = load(trained["best"])
    assert isinstance(model, Forecaster) and model.name == "trajcast"
    assert float(model.interval) == pytest.approx(30.0) and float(model.displacement_scale) > 0
    model.save(tmp_path / "model.pt")
    again = load(tmp_path / "model.pt")
    data = ForecastPairs([Trajectory.read(QUARTZ, md_timestep=1.0)], 3)[0]
    with torch.no_grad():
        a, b = model(data), again(data)
    assert torch.equal(a["displacement"], b["displacement"]) and torch.equal(a["velocities"], b["velocities"])


def test_exported_and_eager_forecasts_agree_in_mlip_forecast(trained, tmp_path):
    exported = tmp_path / "forecaster.pt"
    assert main(["export", trained["best"], "--out", str(exported)]) == 0
    start = f"{QUARTZ}@-1"
    common = ["--steps", "3", "--temperature", "0", "-q", "--band", "0", "100"]
    assert main(["forecast", str(exported), start, "--out", str(tmp_path / "exported"), *common]) == 0
    assert main(["forecast", trained["best"], start, "--out", str(tmp_path / "eager"), *common]) == 0
    a = ase.io.read(tmp_path / "exported" / "trajectory.extxyz", -1)
    b = ase.io.read(tmp_path / "eager" / "trajectory.extxyz", -1)
    assert a.info["time_fs"] == pytest.approx(90.0)
    # float32, three forecasts: the export's torch operations and eager's CPU kernels sum in other
    # orders; positions (up to 14 Å, float32 spacing 1e-6 there) agree to a few spacings, velocities
    # (about 1e-3 Å/fs) to about 2e-5 of their size
    np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=5e-6)
    np.testing.assert_allclose(a.get_velocities(), b.get_velocities(), rtol=1e-4, atol=1e-7)


def test_mlip_forecast_refuses_a_potential(tmp_path, capsys):
    from mlip.models import build

    build("facet", "small").save(tmp_path / "potential.pt")
    assert main(["forecast", str(tmp_path / "potential.pt"), f"{QUARTZ}@0", "--out", str(tmp_path / "f")]) == 2
    assert "not a forecaster" in capsys.readouterr().out

"""Training a forecaster (mlip.models.forecaster) with the potentials' machinery: ForecastModule (the
PotentialModule's optimiser, schedule, EMA, checkpoints and metrics, on displacements and new
velocities), the statistics it takes from the training split, and its predictions for parity plots."""

from __future__ import annotations

import numpy as np
import torch

from mlip.train.module import PotentialModule


class ForecastModule(PotentialModule):
    """PotentialModule for a Forecaster: the loss (mlip.train.loss.ForecastLoss) and the metrics read
    ``{"displacement", "velocities"}``; no forces, so evaluation needs no gradients."""

    def predict(self, model, batch, training: bool) -> dict:
        if training:
            return model(batch)
        with torch.no_grad():
            return model(batch)


def apply_forecast_statistics(model, loss, stats: dict) -> dict:
    """The model's output scales and forecast interval, and the loss's normalisation, from the
    training split's statistics (TrajectoryDataModule.compute_statistics)."""
    model.set_statistics(stats["displacement_rms"], stats["velocity_rms"], stats["interval"],
                         avg_num_neighbors=stats["avg_num_neighbors"])
    loss.set_scales(stats["displacement_rms"], stats["velocity_rms"])
    print(f"forecast interval {stats['interval']:g} fs ({stats['stride']} frames); training split RMS displacement "
          f"{stats['displacement_rms']:.4g} Å, velocity {stats['velocity_rms']:.4g} Å/fs; pairs "
          + ", ".join(f"{k} {v}" for k, v in stats["pairs"].items()))
    return {key: stats[key] for key in ("displacement_rms", "velocity_rms", "interval", "stride",
                                        "avg_num_neighbors")}


def forecast_predictions(model, dataset, cutoff: float, batch_size: int = 16, max_neighbors=None) -> tuple[dict, dict]:
    """A forecaster's predictions and the references over ``dataset`` as flat numpy arrays
    (displacement Å, velocities Å/fs: the new velocities)."""
    from mlip.train.run import graph_loader

    model.eval()
    pred = {"displacement": [], "velocities": []}
    ref = {"displacement": [], "velocities": []}
    with torch.no_grad():
        for batch in graph_loader(dataset, cutoff, batch_size, max_neighbors):
            out = model(batch)
            for key, target in (("displacement", batch.displacement), ("velocities", batch.next_velocities)):
                pred[key].append(out[key].double().reshape(-1))
                ref[key].append(target.double().reshape(-1))
    return ({k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in pred.items()},
            {k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in ref.items()})

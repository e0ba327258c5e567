"""How far to trust a prediction.

    Committee(members)                 K potentials evaluated as one: the mean and its spread
    attach_last_layer(model, train, val)   one model's own uncertainty (LLPR, mlip.nn.llpr), calibrated
    calibration_factor(std, error)     the one factor that makes predicted and actual errors agree
    uncertainty_report(pred, ref)      rank correlation of predicted std and actual error, calibration

A model with an uncertainty returns, besides energy, forces and stress, ``energy_std`` (B,) eV,
``forces_std`` (N,) eV/Å per atom and ``stress_std`` (B,3,3) eV/Å^3; the calculator puts them in
``calc.results``, ``mlip md`` / ``mlip relax --max-uncertainty`` act on ``forces_std``.
"""

from mlip.uncertainty.calibration import calibration_factor, uncertainty_report
from mlip.uncertainty.committee import Committee
from mlip.uncertainty.last_layer import attach_last_layer

__all__ = ["Committee", "attach_last_layer", "calibration_factor", "uncertainty_report"]
